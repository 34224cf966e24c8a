//! One function per subcommand.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use vane_app::dags::Overview;
use vane_app::runs::ManualRun;
use vane_dag::{Dag, DagSet};
use vane_engine::{Engine, Paths, RunSpec};
use vane_exec::ProcessExecutor;
use vane_store::{RunDetail, RunState, StoreThreads};

use crate::cli::{Cli, Command, Global, GraphFormat, LogFormat, ManualRunArgs};
use crate::output::{duration, table, time};

pub(crate) fn dispatch(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Validate(args) => validate(g, &args.paths, args.deny_warnings),
        Command::Schema(args) => {
            if args.markdown {
                print!("{}", vane_dag::reference_markdown(&vane_app::registry()));
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&vane_dag::json_schema(&vane_app::registry()))?
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run(g, &args.run, args.kill_grace),
        Command::Logs(args) => logs(g, &args),
        Command::Dags(args) => dags(g, args.json),
        Command::Runs(args) => runs(g, &args),
        Command::Show(args) => show(g, args.run_id, args.json.json),
        Command::Graph(args) => graph(g, &args.dag_id, args.format),
        Command::Next(args) => next(g, &args.dag_id, args.count, args.after.as_deref()),
        Command::Ticks(args) => ticks(g, &args),
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut crate::cli::command(),
                "vane",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(args) => man(args.dir.as_deref()),
        Command::Scheduler(args) => scheduler(g, &args),
        Command::Serve(args) => crate::http::serve(g, &args),
        Command::Status(args) => crate::status::status(g, &args),
        Command::Trigger(args) => trigger(g, &args),
        Command::Pause(args) => pause(g, &args.dag_id, true),
        Command::Clear(args) => clear(g, &args),
        Command::Stop(args) => stop(g, &args),
        Command::Mark(args) => mark(g, &args),
        Command::Sla(args) => sla(g, args.dag_id.as_deref(), args.limit, args.json.json),
        Command::Backfill(args) => crate::backfill::backfill(g, &args),
        Command::Backfills(args) => crate::backfill::backfills(g, &args),
        Command::Unpause(args) => pause(g, &args.dag_id, false),
        Command::Metrics(args) => crate::metrics::metrics(g, &args),
        Command::Checks(args) => crate::checks::checks(g, &args),
        Command::MarkGood(args) => crate::checks::mark_good(g, &args),
        Command::Artifacts(args) => crate::lineage::artifacts(g, &args),
        Command::Lineage(args) => crate::lineage::lineage(g, &args),
        Command::Diff(args) => crate::lineage::diff(g, &args),
        Command::Why(args) => crate::why::why(g, &args),
        Command::Models(args) => crate::models::models(g, &args),
        Command::Approve(args) => crate::models::approve(g, &args),
        Command::Reject(args) => crate::models::reject(g, &args),
        Command::Promote(args) => crate::models::promote(g, &args),
        Command::Rollback(args) => crate::models::rollback(g, &args),
        Command::Alerts(args) => crate::alerts::alerts(g, &args),
        Command::Ack(args) => crate::alerts::ack(g, &args),
        Command::Resolve(args) => crate::alerts::resolve(g, &args),
        Command::Snooze(args) => crate::alerts::snooze(g, &args),
        Command::ExecBuiltin => crate::builtin::exec_builtin(),
        Command::Agent(args) => crate::agent::agent(g, &args),
        Command::Agents(args) => crate::agent::agents(g, &args),
        Command::AgentWatchdog => crate::agent::agent_watchdog(),
    }
}

/// Opens the store through the application layer, the one place that picks a backend.
/// The project's database if it exists, else an empty one and a note on stderr saying where it
/// was looked for: a command that only reads (or acts on runs, alerts, models that would be in
/// it) never creates one.
pub(crate) fn open_store(g: &Global) -> Result<vane_app::BoxStore> {
    let (store, missing) = app(g).open_existing_store(&g.looked)?;
    if let Some(why) = missing {
        eprintln!("note: {why}");
    }
    Ok(store)
}

/// The project's database, created when missing: for commands that start something (`vane
/// trigger`, `vane pause`, `vane backfill`).
pub(crate) fn open_or_create_store(g: &Global) -> Result<vane_app::BoxStore> {
    Ok(app(g).open_store()?)
}

/// The application layer for these arguments, building engines as the binary wires them.
pub(crate) fn app(g: &Global) -> vane_app::App {
    let wiring = g.clone();
    vane_app::App::new(vane_app::Paths {
        dags: g.dags.clone(),
        db: g.db.clone(),
        state_dir: g.state_dir.clone(),
        config: g.config.clone(),
        work: g.work.clone(),
        root: g.root.clone(),
    })
    .with_engine(std::sync::Arc::new(move |kill_grace| {
        engine(&wiring, kill_grace).map_err(|e| match e.downcast::<vane_app::AppError>() {
            Ok(app) => app,
            Err(other) => vane_app::AppError::Io {
                context: "cannot set up the engine".into(),
                source: std::io::Error::other(format!("{other:#}")),
            },
        })
    }))
}

pub(crate) fn load_dags(g: &Global) -> Result<DagSet> {
    Ok(app(g).load_dags()?)
}

fn validate(g: &Global, paths: &[PathBuf], deny_warnings: bool) -> Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![g.dags.clone()]
    } else {
        paths.to_vec()
    };
    let set = vane_dag::load_paths(&paths, &vane_app::registry());
    let mut errors = 0;
    let mut warnings = 0;
    let mut printed = false;
    let fails = |t: vane_dag::Tally| t.errors > 0 || (deny_warnings && t.warnings > 0);
    // Which files fail, by their place in `set.files`: for their own problems, or for those
    // found against the scheduler config below, which are fixed in the DAG file too.
    let mut failing = vec![false; set.files.len()];
    for (file, failing) in set.files.iter().zip(&mut failing) {
        if file.parsed.diagnostics.is_empty() {
            continue;
        }
        if printed {
            eprintln!();
        }
        eprint!("{}", file.render_diagnostics());
        printed = true;
        let tally = file.tally();
        errors += tally.errors;
        warnings += tally.warnings;
        *failing |= fails(tally);
    }
    // The scheduler config too, when there is one: a typo there fails here (in CI), not when
    // the scheduler starts; a task's pool it does not define is an error, as `vane run` would
    // fail at once; and a DAG's alert rule naming a channel it does not declare is a warning
    // here, where `--deny-warnings` can make it fail. Without one, pools are not checked: DAG
    // files are often checked apart from the config of the scheduler that will run them.
    let config = g.config.is_file().then(|| app(g).config());
    let mut say = |rendered: &str| {
        if printed {
            eprintln!();
        }
        eprint!("{rendered}");
        printed = true;
        for line in rendered.lines() {
            if line.starts_with("error") {
                errors += 1;
            } else if line.starts_with("warning") {
                warnings += 1;
            }
        }
    };
    match &config {
        Some(Ok(config)) => {
            let config_name = g.config.display().to_string();
            for (file, failing) in set.files.iter().zip(&mut failing) {
                for problem in file.undefined_pools(Some(&config.pools), &config_name) {
                    say(&problem.render(&file.path.display().to_string(), &file.source));
                    *failing = true;
                }
            }
            let (_, problems) = vane_alerts::AlertsConfig::of(config).with_dag_rules(&set);
            for problem in &problems {
                say(&problem.rendered);
                if let Some(at) = set.files.iter().position(|f| f.path == problem.path) {
                    failing[at] |= problem.severity == vane_dag::Severity::Error || deny_warnings;
                }
            }
        }
        Some(Err(error)) => match error.diagnostics() {
            Some(diagnostics) => say(diagnostics),
            None => say(&format!("error: {error}\n")),
        },
        None => {
            let config_name = g.config.display().to_string();
            for (file, failing) in set.files.iter().zip(&mut failing) {
                for problem in file.undefined_pools(None, &config_name) {
                    say(&problem.render(&file.path.display().to_string(), &file.source));
                    *failing |= deny_warnings;
                }
            }
        }
    }
    let dags = set.dags().count();
    let tasks: usize = set.dags().map(|(d, _)| d.tasks.len()).sum();
    if printed {
        eprintln!();
    }
    let failed = errors > 0 || (deny_warnings && warnings > 0);
    if set.files.is_empty() {
        eprintln!(
            "warning: no DAG files (*.toml) found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else if failed {
        let bad = failing.iter().filter(|f| **f).count();
        let config_bad = match &config {
            Some(Err(_)) => 1,
            _ => 0,
        };
        let files = set.files.len() + usize::from(config.is_some());
        let bad = bad + config_bad;
        eprintln!(
            "{}: {errors} error{}, {warnings} warning{} in {bad} of {} file{}",
            if errors > 0 {
                "failed"
            } else {
                "failed (warnings denied)"
            },
            plural(errors),
            plural(warnings),
            files,
            plural(files)
        );
    } else {
        println!(
            "ok: {dags} DAG{}, {tasks} task{}{}{}",
            plural(dags),
            plural(tasks),
            if warnings > 0 {
                format!(", {warnings} warning{}", plural(warnings))
            } else {
                String::new()
            },
            if config.is_some() {
                format!(" (and {})", g.config.display())
            } else {
                String::new()
            }
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Finds a valid DAG by id, or explains why it cannot run.
pub(crate) fn find_dag<'a>(
    set: &'a DagSet,
    id: &str,
    g: &Global,
) -> Result<(&'a Dag, &'a vane_dag::DagFile)> {
    Ok(app(g).find_dag(set, id)?)
}

pub(crate) use vane_app::host;

pub(crate) fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(path)?)
}

/// How many connections the engine's store threads hold. SQLite writes one at a time; a
/// second connection lets a read go on beside a write.
const STORE_THREADS: usize = 2;

/// The engine with the paths of this project: logs and work folder in the state folder, and
/// connections of its own on threads of their own.
pub(crate) fn engine(g: &Global, kill_grace: Duration) -> Result<Engine<'static>> {
    engine_as(g, kill_grace, vane_store::LeaseRole::Command)
}

/// [`engine`], owning runs under a lease of the given role.
fn engine_as(
    g: &Global,
    kill_grace: Duration,
    role: vane_store::LeaseRole,
) -> Result<Engine<'static>> {
    let app = app(g);
    let limits = limits(g)?;
    let lease_ttl = limits.lease_ttl.unwrap_or(vane_store::DEFAULT_LEASE_TTL);
    let db = app.db_for_children()?;
    let opened = db.clone();
    let store = StoreThreads::open(STORE_THREADS, move || vane_store::open(&opened))?;
    let state_dir = absolute(&app.state_dir())?;
    let work = absolute(&g.work.clone().unwrap_or_else(|| state_dir.join("work")))?;
    std::fs::create_dir_all(&work)
        .with_context(|| format!("cannot create the work folder {}", work.display()))?;
    let storage = app.storage()?;
    let agents = vane_engine::remote::Agents::new(
        store.clone(),
        limits.agents_all,
        Some(vane_engine::remote::LogStorage {
            url: storage.logs_url.clone(),
            objects: Arc::clone(&storage.logs),
            content_url: storage.content_url.clone(),
        }),
    );
    Ok(Engine {
        limits,
        agents: Some(agents),
        store,
        executor: &ProcessExecutor,
        offload: &vane_engine::BlockingPool,
        paths: Paths {
            logs: state_dir.join("logs"),
            work,
            project_root: g.root.clone(),
            content: storage.content_store(),
        },
        lease: vane_engine::Lease::new(&host(), role, lease_ttl),
        host: host(),
        kill_grace,
        builtin: Some(vane_engine::BuiltinCommand {
            registry: vane_app::registry(),
            exe: std::env::current_exe().context("cannot find the vane executable")?,
            // A built-in task opens the same database and finds the content store where
            // this engine keeps it, whichever folder it runs in.
            env: vec![
                ("VANE_DB".into(), db),
                ("VANE_STATE_DIR".into(), state_dir.display().to_string()),
                ("VANE_CONTENT_STORE".into(), storage.content_url.clone()),
            ],
        }),
    })
}

/// Pools and the global task limit from the scheduler config, when there is one.
pub(crate) fn limits(g: &Global) -> Result<vane_dag::SchedulerConfig> {
    Ok(app(g).config()?)
}

/// A manual run of `dag_id`, created and handed to `then` with its engine and spec.
pub(crate) fn with_manual_run<T>(
    g: &Global,
    target: &ManualRunArgs,
    kill_grace: Duration,
    then: impl FnOnce(&Engine<'_>, &RunSpec<'_>, vane_store::RunId) -> Result<T>,
) -> Result<T> {
    app(g).with_manual_run(&manual_run(target), kill_grace, then)
}

fn manual_run(target: &ManualRunArgs) -> ManualRun {
    ManualRun {
        dag_id: target.dag_id.clone(),
        params: target.params.clone(),
        date: target.date.clone(),
    }
}

fn trigger(g: &Global, target: &ManualRunArgs) -> Result<ExitCode> {
    let queued = app(g).trigger(&*open_or_create_store(g)?, &manual_run(target))?;
    println!("{}", queued.run_id);
    eprintln!(
        "run {} of {} queued; a running `vane scheduler` starts it",
        queued.run_id, target.dag_id
    );
    Ok(ExitCode::SUCCESS)
}

fn sla(g: &Global, dag_id: Option<&str>, limit: usize, as_json: bool) -> Result<ExitCode> {
    let store = open_store(g)?;
    let misses = vane_app::reads::sla_misses(&*store, dag_id, limit)?;
    if let Some(dag_id) = dag_id
        && misses.is_empty()
    {
        app(g).known_dag(&*store, dag_id)?;
    }
    if as_json {
        let items = vane_app::reads::sla_json(&misses);
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    // In the DAG's time zone, as `vane runs` shows the same logical dates.
    let mut rows: Vec<Vec<String>> = Vec::new();
    for m in &misses {
        let zone = vane_app::runs::zone(&store.run(m.run)?.run);
        let local = |t: &chrono::DateTime<chrono::Utc>| {
            t.with_timezone(&zone)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        };
        rows.push(vec![
            m.run.to_string(),
            m.dag_id.clone(),
            m.task.clone().unwrap_or_else(|| "(run)".into()),
            local(&m.logical_date),
            local(&m.deadline),
        ]);
    }
    print!(
        "{}",
        table(&["RUN", "DAG", "TASK", "LOGICAL DATE", "DEADLINE"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

fn pause(g: &Global, dag_id: &str, paused: bool) -> Result<ExitCode> {
    app(g).set_paused(&*open_or_create_store(g)?, dag_id, paused)?;
    eprintln!(
        "{dag_id} {}",
        if paused {
            "paused: the scheduler creates no runs for it until `vane unpause`"
        } else {
            "unpaused: ticks missed while paused follow its `catchup` policy"
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn scheduler(g: &Global, args: &crate::cli::SchedulerArgs) -> Result<ExitCode> {
    let (grace, kill_grace) = (args.grace, args.kill_grace);
    // A DAG folder that is not there is a mistyped --dags: said as `vane run` says it, before
    // a database is created, a lease taken or a port bound for nothing.
    load_dags(g)?;
    init_tracing_format(args.log_format == LogFormat::Json);
    if let Some(addr) = args.http {
        crate::http::spawn(g, addr, &args.auth)?;
    }
    // Handlers first: a SIGTERM while the database is being opened is a clean stop too.
    let (runtime, stop) = runtime_with_stop()?;
    let engine = engine_as(
        g,
        Duration::from_secs(kill_grace),
        vane_store::LeaseRole::Scheduler,
    )?;
    let config = vane_daemon::Config {
        dags_dir: absolute(&g.dags)?,
        shutdown_grace: Duration::from_secs(grace),
        poll: Duration::from_millis(500),
        clock: vane_daemon::Clock::system(),
    };
    evaluate_alerts_every(
        ALERTS_EVERY,
        app(g).db_for_children()?,
        vane_alerts::AlertsConfig::of(&limits(g)?),
        config.dags_dir.clone(),
    );
    runtime.block_on(vane_daemon::run(engine, config, async {
        stop.await;
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// How often the scheduler turns newly recorded history into alerts.
const ALERTS_EVERY: Duration = Duration::from_secs(10);

/// Evaluates the alert rules on a thread of its own, with its own database connection:
/// delivering to a slow webhook (timeouts, retries) must never hold up scheduling. Alerts are
/// derived from what is recorded, so one that is cut off by a shutdown is found again by the
/// next evaluation.
///
/// The config is read once; DAG files are read again before every evaluation, as the
/// scheduler picks up their changes. While no rule exists at all nothing is evaluated, so the
/// first rule added later still sees the history of the day before.
fn evaluate_alerts_every(
    every: Duration,
    db: String,
    config: vane_alerts::AlertsConfig,
    dags_dir: PathBuf,
) {
    let mut logged = Logged::default();
    let mut rules =
        reload_alert_rules(&config, &dags_dir, &mut logged).unwrap_or_else(|| config.clone());
    std::thread::spawn(move || {
        let store = match vane_store::open(&db) {
            Ok(store) => store,
            Err(error) => {
                tracing::error!(%error, "Alerts are off: cannot open the database.");
                return;
            }
        };
        loop {
            std::thread::sleep(every);
            if let Some(fresh) = reload_alert_rules(&config, &dags_dir, &mut logged) {
                rules = fresh;
            }
            if rules.rules.is_empty() {
                continue;
            }
            match vane_alerts::evaluate(&*store, &rules, Utc::now()) {
                Ok(report) => {
                    for n in report.notifications.iter().filter(|n| n.error.is_some()) {
                        tracing::warn!(channel = %n.channel, alerts = n.alerts.len(), attempt = n.attempt, retry_at = ?n.retry_at, error = n.error.as_deref(), "Alert notification not delivered; it is tried again.");
                    }
                    for (alert, why) in &report.abandoned {
                        tracing::info!(alert, why = %why, "Undelivered alert notification abandoned.");
                    }
                    if !report.raised.is_empty() {
                        tracing::info!(
                            raised = report.raised.len(),
                            resolved = report.resolved.len(),
                            "Alerts evaluated."
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "Alert evaluation failed; trying again."),
            }
        }
    });
}

/// What the alerts thread last logged about DAG files' rules: a problem is logged when it
/// appears, not every pass.
#[derive(Default)]
struct Logged {
    problems: Vec<vane_alerts::DagRuleProblem>,
    unreadable: bool,
}

/// The config's alert rules with the DAG files' own; `None` when the DAG folder cannot be
/// read, so that the last rules read stay.
fn reload_alert_rules(
    config: &vane_alerts::AlertsConfig,
    dags_dir: &Path,
    logged: &mut Logged,
) -> Option<vane_alerts::AlertsConfig> {
    let (rules, problems) = match vane_app::alerts::with_dag_rules(config, dags_dir) {
        Ok(loaded) => loaded,
        Err(error) => {
            if !logged.unreadable {
                tracing::warn!(path = %dags_dir.display(), %error, "Cannot read the DAG folder; the alert rules stay as last read.");
            }
            logged.unreadable = true;
            return None;
        }
    };
    for p in problems.iter().filter(|p| !logged.problems.contains(p)) {
        tracing::warn!(at = %p.at, rule = %p.rule, hint = %p.hint, "{}", p.message);
    }
    *logged = Logged {
        problems,
        unreadable: false,
    };
    Some(rules)
}

fn run(g: &Global, target: &ManualRunArgs, kill_grace: u64) -> Result<ExitCode> {
    init_tracing();
    // Signal handlers go in before the run exists: a Ctrl-C at any moment after this stops
    // the run cleanly instead of killing vane and orphaning its tasks.
    let (runtime, stop) = runtime_with_stop()?;
    let kill_grace = Duration::from_secs(kill_grace);
    with_manual_run(g, target, kill_grace, |engine, spec, run_id| {
        let dag = spec.dag;
        println!(
            "run {run_id}: {} for {} ({} task{})",
            dag.id,
            spec.logical_date
                .with_timezone(&dag.timezone)
                .format("%Y-%m-%d %H:%M %Z (%:z)"),
            dag.tasks.len(),
            plural(dag.tasks.len())
        );
        foreground(g, &runtime, stop, engine, spec, run_id)
    })
}

/// Executes a run here and now; `stop` (Ctrl-C, SIGTERM) kills its tasks and fails it.
/// Prints the task table to stdout; the exit code says whether the run succeeded (0), failed
/// (1), or was interrupted by a signal (128 + its number: 130 for Ctrl-C).
fn foreground(
    g: &Global,
    runtime: &tokio::runtime::Runtime,
    stop: impl std::future::Future<Output = i32>,
    engine: &Engine<'_>,
    spec: &RunSpec<'_>,
    run_id: vane_store::RunId,
) -> Result<ExitCode> {
    let (state, signal) = runtime.block_on(async {
        let (control, watch) = tokio::sync::watch::channel(vane_engine::Control::Run);
        let execution = engine.execute(run_id, spec, watch);
        tokio::pin!(execution);
        tokio::select! {
            state = &mut execution => (state, None),
            signal = stop => {
                let _ = control.send(vane_engine::Control::Stop(vane_engine::StopReason::User));
                (execution.await, Some(signal))
            }
        }
    });
    let state = state?;
    let detail = engine.store.call_blocking(move |s| s.run(run_id))?;
    print!("{}", task_table(&detail));
    if state == RunState::Success {
        println!("run {run_id} succeeded");
        return Ok(ExitCode::SUCCESS);
    }
    print_failed_tails(g, &detail);
    println!(
        "run {run_id} {}: {}",
        state,
        detail.run.reason.as_deref().unwrap_or("failed")
    );
    // A run that failed before any task started (stopped at once, an undefined pool) has no
    // output to point at.
    if detail.tasks.iter().any(|t| !t.attempts.is_empty()) {
        println!("  see a task's output with: vane logs {run_id} TASK");
    }
    // Pointed at only when there is a good run to compare with.
    let (dag, date) = (detail.run.dag_id.clone(), detail.run.logical_date);
    let good_before = engine
        .store
        .call_blocking(move |s| s.runs_before(&dag, date, &[RunState::Success], 1))
        .is_ok_and(|runs| !runs.is_empty());
    if good_before {
        println!("  see what differs from the last good run with: vane why {run_id}");
    }
    Ok(match signal {
        Some(signal) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(130)),
        None => ExitCode::FAILURE,
    })
}

/// A runtime for executing runs, with SIGINT/SIGTERM handlers already installed; the future
/// resolves with the first signal's number.
pub(crate) fn runtime_with_stop() -> Result<(
    tokio::runtime::Runtime,
    impl std::future::Future<Output = i32>,
)> {
    let (runtime, mut signals) = runtime_with_signals()?;
    Ok((runtime, async move {
        signals
            .recv()
            .await
            .unwrap_or(nix::sys::signal::Signal::SIGINT as i32)
    }))
}

/// A runtime for executing runs, and every SIGINT or SIGTERM from now on, one message each
/// with the signal's number (a second Ctrl-C can mean "harder").
pub(crate) fn runtime_with_signals() -> Result<(
    tokio::runtime::Runtime,
    tokio::sync::mpsc::UnboundedReceiver<i32>,
)> {
    use tokio::signal::unix::{SignalKind, signal};
    // One thread drives the run and supervises its processes: measured faster than a
    // multi-threaded runtime, whose cross-thread wake-ups cost more than they overlap.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    {
        let _runtime = runtime.enter();
        // Installed now, before anything starts: a signal from here on is never lost.
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            loop {
                let signal = tokio::select! {
                    _ = interrupt.recv() => nix::sys::signal::Signal::SIGINT,
                    _ = terminate.recv() => nix::sys::signal::Signal::SIGTERM,
                };
                if sender.send(signal as i32).is_err() {
                    break;
                }
            }
        });
    }
    Ok((runtime, receiver))
}

fn mark(g: &Global, args: &crate::cli::MarkArgs) -> Result<ExitCode> {
    let mark = match args.state {
        crate::cli::MarkState::Success => vane_engine::Mark::Success,
        crate::cli::MarkState::Failed => vane_engine::Mark::Failed,
    };
    let by = vane_app::who(args.by.as_deref());
    let detail = app(g).mark(
        &*open_store(g)?,
        args.run_id,
        &args.task,
        mark,
        &by,
        args.reason.as_deref(),
    )?;
    let run = &detail.run;
    println!(
        "run {} {}: {}",
        run.id,
        run.state,
        run.reason.as_deref().unwrap_or_default()
    );
    if run.state == RunState::Queued {
        eprintln!(
            "  a running `vane scheduler` runs what depends on `{}`",
            args.task
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `vane stop --task`: waits (unless told not to) for the task's attempt to end.
fn stop_task(
    store: &dyn vane_store::Store,
    run: vane_store::RunId,
    task: &str,
    no_wait: bool,
) -> Result<ExitCode> {
    eprintln!("run {run}: stop of task `{task}` requested; the run's owner kills it");
    if no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = std::time::Instant::now() + STOP_WAIT;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let detail = store.run(run)?;
        let Some(t) = detail.tasks.iter().find(|t| t.task_id == task) else {
            break;
        };
        if t.state != vane_store::TaskState::Running {
            let reason = t.attempts.last().and_then(|a| a.reason.clone());
            println!(
                "task `{task}` of run {run} {}: {}",
                t.state,
                reason.unwrap_or_default()
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    anyhow::bail!(
        "task `{task}` of run {run} still runs after {} s: is its owner running? (`vane status`)",
        STOP_WAIT.as_secs()
    )
}

/// How long `vane stop` waits for a run's owner to stop it: the owner looks for requests every
/// second, and killed tasks get their kill grace.
const STOP_WAIT: Duration = Duration::from_secs(60);

fn stop(g: &Global, args: &crate::cli::StopArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let by = vane_app::who(args.by.as_deref());
    let run = app(g).stop(
        &*store,
        args.run_id,
        args.task.as_deref(),
        &by,
        args.reason.as_deref(),
    )?;
    if let Some(task) = &args.task {
        return stop_task(&*store, args.run_id, task, args.no_wait);
    }
    let ended =
        |r: &vane_store::RunRecord| !matches!(r.state, RunState::Queued | RunState::Running);
    if ended(&run) {
        println!(
            "run {} {}: {}",
            run.id,
            run.state,
            run.reason.unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let owner = run.owner.as_ref().map_or_else(
        || "its owner".to_owned(),
        |o| format!("vane pid {} on {}", o.pid, o.host),
    );
    eprintln!("run {}: stop requested; {owner} stops it", run.id);
    if args.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = std::time::Instant::now() + STOP_WAIT;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = store.run(args.run_id)?.run;
        if ended(&now) {
            println!(
                "run {} {}: {}",
                now.id,
                now.state,
                now.reason.unwrap_or_default()
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    anyhow::bail!(
        "run {} is still {} after {} s: {owner} has not stopped it; is it running? (`vane status`)",
        args.run_id,
        store.run(args.run_id)?.run.state,
        STOP_WAIT.as_secs()
    )
}

pub(crate) fn clear(g: &Global, args: &crate::cli::ClearArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let plan = app(g).plan_clear(
        &*store,
        &vane_app::runs::ClearArgs {
            run_id: args.run_id,
            tasks: args.tasks.clone(),
            downstream: args.downstream,
            failed_only: args.failed_only,
            params: args.params.clone(),
            by: vane_app::who(args.by.as_deref()),
        },
    )?;
    if plan.recorded_version {
        eprintln!(
            "note: DAG `{}` is not in {} or does not validate; rerunning the version run {} recorded",
            plan.detail.run.dag_id,
            g.dags.display(),
            args.run_id
        );
    }
    let waiting = plan.detail.run.state == RunState::Queued;
    if plan.cleared.is_empty() && !(args.foreground && waiting) {
        eprintln!("nothing to clear in run {}", args.run_id);
        return Ok(ExitCode::SUCCESS);
    }
    if !plan.cleared.is_empty() {
        eprintln!("run {}: cleared {}", args.run_id, plan.cleared.join(", "));
    }
    for change in &plan.changes {
        if let vane_store::Change::RunParams { params, .. } = change {
            eprintln!("  params {} -> {params}", plan.detail.run.params);
        }
    }
    if !args.foreground {
        store.apply(&plan.changes)?;
        eprintln!("  a running `vane scheduler` reruns them; or rerun here with --foreground");
        return Ok(ExitCode::SUCCESS);
    }
    init_tracing();
    let (runtime, stop) = runtime_with_stop()?;
    store.apply(&plan.changes)?;
    let engine = engine(g, Duration::from_secs(10))?;
    let (dag, detail) = (&plan.dag, &plan.detail);
    // As cleared: with the params the clear may have changed.
    let params = store.run(args.run_id)?.run.params;
    let spec = RunSpec {
        dag,
        source: &plan.source,
        path: &plan.path,
        params: dag.params_from_json(&params),
        logical_date: detail.run.logical_date,
        trigger: detail.run.trigger,
        git: detail.run.git.clone(),
        backfill: None,
    };
    foreground(g, &runtime, stop, &engine, &spec, args.run_id)
}

pub(crate) fn init_tracing() {
    init_tracing_format(false);
}

/// Whether vane's log lines are coloured, decided once from `--color` and NO_COLOR.
static COLOR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

pub(crate) fn set_color(on: bool) {
    let _ = COLOR.set(on);
}

fn init_tracing_format(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VANE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if json {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .json()
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(*COLOR.get().unwrap_or(&false))
        .compact()
        .try_init();
}

/// How many lines of a failed task's log `vane run` shows.
const TAIL_LINES: usize = 10;

/// The last lines of each failed task's log, so the failure is on screen without another
/// command. A log that cannot be read is left out: the hint to `vane logs` follows anyway.
fn print_failed_tails(g: &Global, detail: &RunDetail) {
    let app = app(g);
    let objects = app.storage().ok().map(|s| s.logs);
    for t in &detail.tasks {
        let Some(last) = t.attempts.last() else {
            continue;
        };
        if t.state != vane_store::TaskState::Failed {
            continue;
        }
        let Ok(store) = app.open_store() else {
            return;
        };
        let mut reader =
            vane_app::logs::LogReader::new(store, objects.clone(), detail.run.id, &t.task_id, last);
        let mut text = Vec::new();
        if reader.copy_to(&mut text).is_err() {
            continue;
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let shown = &lines[lines.len().saturating_sub(TAIL_LINES)..];
        if shown.is_empty() {
            continue;
        }
        println!(
            "--- {} attempt {}: last {} line{} of its log ---",
            t.task_id,
            last.attempt,
            shown.len(),
            plural(shown.len())
        );
        for line in shown {
            println!("{line}");
        }
    }
}

fn task_table(detail: &RunDetail) -> String {
    let rows: Vec<Vec<String>> = detail
        .tasks
        .iter()
        .map(|t| {
            let last = t.attempts.last();
            vec![
                t.task_id.clone(),
                t.state.to_string(),
                t.attempts.len().to_string(),
                duration(last.map(|a| a.started_at), last.and_then(|a| a.ended_at)),
                last.and_then(|a| a.exit_code)
                    .map_or_else(|| "-".into(), |c| c.to_string()),
                vane_app::runs::task_reason(t).unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["TASK", "STATE", "ATTEMPTS", "DURATION", "EXIT", "REASON"],
        &rows,
    )
}

fn logs(g: &Global, args: &crate::cli::LogsArgs) -> Result<ExitCode> {
    use std::io::Write;
    let app = app(g);
    let store = open_store(g)?;
    let detail = store.run(args.run_id)?;
    // Without the storage a task run here still has its log; one an agent shipped says why not.
    let objects = app.storage().ok().map(|s| s.logs);
    let reader =
        |task: &str, attempt: &vane_store::AttemptRecord| -> Result<vane_app::logs::LogReader> {
            Ok(vane_app::logs::LogReader::new(
                app.open_store()?,
                objects.clone(),
                args.run_id,
                task,
                attempt,
            ))
        };
    let mut out = std::io::stdout().lock();
    let Some(task) = &args.task else {
        let mut latest: Vec<(&str, &vane_store::AttemptRecord)> = detail
            .tasks
            .iter()
            .filter_map(|t| Some((t.task_id.as_str(), t.attempts.last()?)))
            .collect();
        latest.sort_by_key(|(_, a)| a.started_at);
        if latest.is_empty() {
            println!("run {} has no task that started yet", args.run_id);
        }
        for (i, (task, attempt)) in latest.into_iter().enumerate() {
            let mut text = Vec::new();
            reader(task, attempt)?.copy_to(&mut text)?;
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(
                out,
                "==> {task} (attempt {}, {}) <==",
                attempt.attempt, attempt.state
            )?;
            out.write_all(&text)?;
            if !text.is_empty() && !text.ends_with(b"\n") {
                writeln!(out)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let chosen = vane_app::runs::find_attempt(&detail, task, args.attempt)?;
    let mut log = reader(task, chosen)?;
    if !args.follow {
        log.copy_to(&mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    // The attempt chosen now is followed to its end, even if a retry starts meanwhile.
    let number = chosen.attempt;
    loop {
        // Whether it still runs is read before the log, so nothing it wrote before ending is
        // left unread.
        let running = vane_app::runs::attempt_running(&*store, args.run_id, task, number);
        log.copy_to(&mut out)?;
        out.flush()?;
        if !running {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dags(g: &Global, as_json: bool) -> Result<ExitCode> {
    let store = open_store(g)?;
    let view = Overview::load(&app(g), &*store)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&view.view())?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = view
        .set
        .dags()
        .map(|(dag, _)| {
            let run = view.last(&dag.id);
            vec![
                dag.id.clone(),
                dag.schedule
                    .as_ref()
                    .map_or_else(|| "manual".into(), |s| s.expression.clone()),
                dag.tasks.len().to_string(),
                if view.paused(dag) {
                    "paused".into()
                } else {
                    view.next(dag).unwrap_or_else(|| "-".into())
                },
                run.map_or_else(
                    || "-".into(),
                    |r| format!("{} {} ({})", r.id, r.state, time(Some(r.queued_at))),
                ),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["DAG", "SCHEDULE", "TASKS", "NEXT RUN", "LAST RUN"], &rows)
    );
    for file in view.invalid() {
        let errors = file.error_count();
        // Its DAG drops out of the table above, yet schedulers keep it running: say on which
        // version, so the broken file does not read as a DAG gone.
        let id = file
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let latest = store
            .runs(&vane_store::RunFilter {
                dag_id: Some(&id),
                limit: 1,
                ..vane_store::RunFilter::default()
            })?
            .into_iter()
            .next();
        let kept = latest.map_or_else(String::new, |run| {
            format!(
                "; a running scheduler keeps `{id}` going on the version of run {}",
                run.id
            )
        });
        println!(
            "invalid: {} ({errors} error{}; run `{}`){kept}",
            file.path.display(),
            plural(errors),
            vane_app::validate_command(file)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn runs(g: &Global, args: &crate::cli::RunsArgs) -> Result<ExitCode> {
    let (dag_id, limit, as_json) = (
        args.list.dag_id.as_deref(),
        args.list.limit,
        args.list.json.json,
    );
    let states = match &args.state {
        Some(text) => vec![vane_app::runs::parse_state(text)?],
        None => Vec::new(),
    };
    let store = open_store(g)?;
    let runs = vane_app::runs::list(&*store, dag_id, &states, limit)?;
    if let Some(dag_id) = dag_id
        && runs.is_empty()
    {
        app(g).known_dag(&*store, dag_id)?;
    }
    let waits = vane_app::runs::Waits::of(&*store, &runs)?;
    if as_json {
        let items: Vec<_> = runs.iter().map(|r| waits.view(r)).collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.dag_id.clone(),
                vane_app::runs::logical_date_text(r),
                r.trigger.to_string(),
                waits.state(r),
                time(r.started_at),
                duration(r.started_at, r.ended_at),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "RUN",
                "DAG",
                "LOGICAL DATE",
                "TRIGGER",
                "STATE",
                "STARTED",
                "DURATION"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn show(g: &Global, run_id: vane_store::RunId, as_json: bool) -> Result<ExitCode> {
    let store = open_store(g)?;
    let detail = store.run(run_id)?;
    let run = &detail.run;
    let waits = vane_app::runs::Waits::of(&*store, [run])?;
    let changed = store.param_changes(run_id)?;
    let agents = vane_app::agents::Agents::read(&*store)?;
    let now = chrono::Utc::now();
    if as_json {
        let value = vane_app::runs::shown(&*store, &detail)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("run {} of {}: {}", run.id, run.dag_id, waits.state(run));
    if let Some(stage) = waits.get(run.id) {
        println!(
            "  waiting:      task `{}` waits for a person at stage `{}` ({} v{}){}; `vane approve {}` or `vane reject {} --reason ...`",
            stage.task_id,
            stage.stage,
            stage.model,
            stage.version,
            stage
                .detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default(),
            run.id,
            run.id
        );
    }
    for (d, why) in agents.of_run(run_id, now) {
        println!(
            "  agents:       task `{}` attempt {} {why}",
            d.task, d.attempt
        );
    }
    if let Some(reason) = &run.reason {
        println!("  reason:       {reason}");
    }
    println!(
        "  logical date: {} ({})",
        vane_app::runs::logical_date_text(run),
        vane_app::runs::zone(run).name()
    );
    println!("  trigger:      {}", run.trigger);
    println!("  params:       {}", run.params);
    for change in &changed {
        println!(
            "  changed:      {} by {}: params were {}",
            change.at.to_rfc3339(),
            change.by,
            change.before
        );
    }
    println!(
        "  dag version:  {} (sha256 {})",
        run.dag_version,
        &run.dag_hash[..12.min(run.dag_hash.len())]
    );
    if let Some(git) = &run.git {
        println!(
            "  git:          {}{}",
            git.commit,
            if git.dirty { " (dirty)" } else { "" }
        );
    }
    println!("  host:         {}", run.host);
    println!("  started:      {}", time(run.started_at));
    println!("  duration:     {}", duration(run.started_at, run.ended_at));
    println!();
    print!("{}", task_table(&detail));
    Ok(ExitCode::SUCCESS)
}

fn next(g: &Global, dag_id: &str, count: usize, after: Option<&str>) -> Result<ExitCode> {
    for tick in app(g).next_ticks(dag_id, count, after)? {
        println!("{tick}");
    }
    Ok(ExitCode::SUCCESS)
}

/// vane(1) on stdout, or vane(1) and vane-COMMAND(1) for every visible command in `dir`.
fn man(dir: Option<&Path>) -> Result<ExitCode> {
    let cmd = crate::cli::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, page: clap::Command| -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        clap_mangen::Man::new(page).render(&mut file)?;
        Ok(())
    };
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("vane-{}", sub.get_name());
        write(&name, sub.clone().name(name.clone()))?;
        written += 1;
    }
    write("vane", cmd)?;
    eprintln!("wrote {written} man pages to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn ticks(g: &Global, args: &crate::cli::TicksArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let history = app(g).ticks(&*store, &args.dag_id, args.limit)?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&history.view())?);
        return Ok(ExitCode::SUCCESS);
    }
    let zone = history.timezone;
    let rows: Vec<Vec<String>> = history
        .ticks
        .iter()
        .map(|t| {
            let decision = match &t.decision {
                vane_store::TickDecision::Run(run) => format!("run {run}"),
                vane_store::TickDecision::Skipped(why) => format!("skipped: {why}"),
            };
            vec![
                vane_app::dags::local(t.logical_date, zone),
                vane_app::dags::local(t.decided_at, zone),
                decision,
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no tick of `{}` was decided yet", history.dag_id);
    } else {
        print!(
            "{}",
            table(&["TICK (LOGICAL DATE)", "DECIDED", "DECISION"], &rows)
        );
    }
    if let Some(next) = history.next {
        println!("next tick: {}", vane_app::dags::local(next, zone));
    }
    for note in &history.notes {
        println!("note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

fn graph(g: &Global, dag_id: &str, format: GraphFormat) -> Result<ExitCode> {
    let set = load_dags(g)?;
    let (dag, _) = find_dag(&set, dag_id, g)?;
    let mut out = String::new();
    match format {
        GraphFormat::Text => {
            // Each task on the level after its deepest dependency, so reading down is running order.
            let mut level = vec![0usize; dag.tasks.len()];
            for i in topological(dag) {
                level[i] = dag.tasks[i]
                    .depends_on
                    .iter()
                    .map(|&d| level[d] + 1)
                    .max()
                    .unwrap_or(0);
            }
            let depth = level.iter().max().copied().unwrap_or(0);
            for l in 0..=depth {
                for (i, task) in dag.tasks.iter().enumerate().filter(|(i, _)| level[*i] == l) {
                    let _ = i;
                    let deps: Vec<&str> = task
                        .depends_on
                        .iter()
                        .map(|&d| dag.tasks[d].id.as_str())
                        .collect();
                    if deps.is_empty() {
                        out.push_str(&format!("{}{}\n", "  ".repeat(l), task.id));
                    } else {
                        out.push_str(&format!(
                            "{}{}  <- {}\n",
                            "  ".repeat(l),
                            task.id,
                            deps.join(", ")
                        ));
                    }
                }
            }
        }
        GraphFormat::Dot => {
            out.push_str(&format!("digraph \"{}\" {{\n  rankdir=LR;\n", dag.id));
            for task in &dag.tasks {
                out.push_str(&format!("  \"{}\";\n", task.id));
                for &d in &task.depends_on {
                    out.push_str(&format!("  \"{}\" -> \"{}\";\n", dag.tasks[d].id, task.id));
                }
            }
            out.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for (i, task) in dag.tasks.iter().enumerate() {
                out.push_str(&format!("  t{i}[\"{}\"]\n", task.id));
            }
            for (i, task) in dag.tasks.iter().enumerate() {
                for &d in &task.depends_on {
                    out.push_str(&format!("  t{d} --> t{i}\n"));
                }
            }
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Task indices with every task after its dependencies (the DAG is acyclic once valid).
fn topological(dag: &Dag) -> Vec<usize> {
    let mut done = HashSet::new();
    let mut order = Vec::with_capacity(dag.tasks.len());
    fn visit(dag: &Dag, i: usize, done: &mut HashSet<usize>, order: &mut Vec<usize>) {
        if !done.insert(i) {
            return;
        }
        for &d in &dag.tasks[i].depends_on {
            visit(dag, d, done, order);
        }
        order.push(i);
    }
    for i in 0..dag.tasks.len() {
        visit(dag, i, &mut done, &mut order);
    }
    order
}
