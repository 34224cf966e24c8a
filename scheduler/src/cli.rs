//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// vane: DAG workflows for machine-learning pipelines.
///
/// DAGs are TOML files in a folder (default ./dags). Every run, task attempt and DAG version is
/// recorded in a SQLite database (default ./.vane/vane.db); logs live beside it.
#[derive(Debug, Parser)]
#[command(
    name = "vane",
    version,
    about,
    long_about,
    max_term_width = 100,
    after_long_help = "Exit codes: 0 success; 1 a run, backfill or validation failed; 2 a command line vane cannot parse; 3 not found (run, task, DAG, alert, model); 4 invalid input (a DAG file or config that does not validate, a bad date or param); 5 conflict (a run for that date exists, the run has ended); 6 the database or a file cannot be used; 130 interrupted by Ctrl-C (143 by SIGTERM)."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// Folder of DAG files.
    #[arg(long, global = true, env = "VANE_DAGS", default_value = "dags")]
    pub(crate) dags: PathBuf,
    /// Database: a SQLite file, or a `postgres://user@host/db` URL that several schedulers share.
    #[arg(long, global = true, env = "VANE_DB", default_value = ".vane/vane.db")]
    pub(crate) db: String,
    /// Logs, the work folder and the artifact store [default: the SQLite file's folder; `.vane` with PostgreSQL].
    #[arg(long, global = true, env = "VANE_STATE_DIR", value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// Scheduler config: pools, the global task limit, alerts. Optional; read when it exists.
    #[arg(long, global = true, env = "VANE_CONFIG", default_value = "vane.toml")]
    pub(crate) config: PathBuf,
    /// Work folder for what runs produce, given to tasks as $VANE_WORK [default: beside the database].
    #[arg(long, global = true, env = "VANE_WORK")]
    pub(crate) work: Option<PathBuf>,
    /// Colour in vane's own log lines on stderr: `auto` on a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, env = "VANE_COLOR")]
    pub(crate) color: ColorChoice,
    /// The project folder: where tasks run, and what the default paths above are relative to.
    /// Found as git finds a repository (see [`Global::discover`]).
    #[arg(skip)]
    pub(crate) root: PathBuf,
    /// Where the project was looked for, for errors that say so.
    #[arg(skip)]
    pub(crate) looked: String,
}

/// When vane colours its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    /// On a terminal, unless the NO_COLOR environment variable is set (no-color.org).
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour what goes to stderr.
    pub(crate) fn stderr(self) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::IsTerminal::is_terminal(&std::io::stderr())
            }
        }
    }
}

/// What makes a folder a vane project: the first of these found in the current folder or a
/// parent.
const PROJECT_MARKERS: &[&str] = &["vane.toml", "dags", ".vane"];

impl Global {
    /// Finds the project from the current folder the way git finds a repository: the nearest
    /// folder, this one or a parent, with `vane.toml`, `dags/` or `.vane/`. The paths left at
    /// their defaults (the DAG folder, the database, the config) are then that folder's, so
    /// `cd dags && vane runs` reads the project's database instead of creating another; paths
    /// given on the command line or in the environment stay as given.
    pub(crate) fn discover(&mut self, matches: &clap::ArgMatches) {
        let Ok(here) = std::env::current_dir() else {
            return;
        };
        let found = here
            .ancestors()
            .find(|dir| PROJECT_MARKERS.iter().any(|m| dir.join(m).exists()));
        self.looked = match found {
            Some(root) => format!("the project found at {}", root.display()),
            None => format!(
                "no folder with vane.toml, dags/ or .vane/ in {} or its parents",
                here.display()
            ),
        };
        let Some(root) = found else {
            self.root = here;
            return;
        };
        let default = |id: &str| {
            matches!(
                matches.value_source(id),
                None | Some(clap::parser::ValueSource::DefaultValue)
            )
        };
        if root != here {
            if default("dags") {
                self.dags = root.join(&self.dags);
            }
            if default("db") && !self.db.contains("://") {
                self.db = root.join(&self.db).display().to_string();
            }
            if default("config") {
                self.config = root.join(&self.config);
            }
        }
        self.root = root.to_path_buf();
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check DAG files like a compiler: every problem, with file:line:col and a hint.
    ///
    /// The scheduler config (vane.toml, or --config) too, when there is one, and the DAGs
    /// against it: each task's pool against its [pools], and alert rules against its
    /// channels (without a config, a task with a pool is a warning). Exits 0 when every file
    /// is valid, 1 when any has an error (or a warning, with --deny-warnings).
    Validate(ValidateArgs),
    /// Print the JSON Schema of DAG files, for editors (taplo, Even Better TOML).
    Schema(SchemaArgs),
    /// Run a DAG once now, in the foreground; exits 0 only if the run succeeds.
    ///
    /// Ctrl-C stops the run: running tasks are killed with their process groups, and the
    /// run is recorded as failed.
    Run(RunArgs),
    /// Print the log of a task attempt, or of every task of a run.
    Logs(LogsArgs),
    /// List DAGs with their schedule, task count and last run.
    Dags(JsonFlag),
    /// List runs, newest first.
    Runs(RunsArgs),
    /// Show a run: its DAG version, params, and every task with its attempts.
    Show(ShowArgs),
    /// Draw a DAG's dependency graph.
    Graph(GraphArgs),
    /// Print the next logical dates of a DAG's schedule, one RFC 3339 timestamp per line.
    ///
    /// Use it to check a cron expression (and its time zone and daylight-saving days) before
    /// committing it.
    Next(NextArgs),
    /// Show a DAG's schedule ticks and what was decided for each: "why didn't it run?"
    ///
    /// Each recent tick with its decision (the run, or skipped and why: overlap, catch-up),
    /// the next tick, and what stops ticks from being decided (paused, no scheduler running),
    /// in the DAG's time zone.
    Ticks(TicksArgs),
    /// Run the scheduler daemon in the foreground: every DAG on its cron cadence.
    ///
    /// Reloads edited DAG files without a restart (a file that stops validating keeps its last
    /// good version running), records every tick with its decision, starts runs queued by
    /// `vane trigger`, and adopts runs left behind by a crashed scheduler. SIGTERM or Ctrl-C
    /// starts no new task, gives running tasks --grace seconds, then kills them; unfinished
    /// runs resume on the next start.
    Scheduler(SchedulerArgs),
    /// Serve the web UI, the HTTP API and Prometheus /metrics on the same database, without
    /// scheduling.
    ///
    /// Open the address in a browser for the UI (DAGs, grid, graph, runs, logs, checks,
    /// models, alerts). Reads are open on a loopback address; actions (trigger, clear, pause, approve, ...)
    /// need `Authorization: Bearer TOKEN` with the token from --token-file or VANE_API_TOKEN.
    Serve(crate::http::ServeArgs),
    /// Run tasks on this host for the schedulers of a shared database, as labelled.
    ///
    /// Claims attempts of tasks whose `runs_on` labels this host has (all with `[scheduler]
    /// agents = "all"`), at most --slots at once, under a lease renewed every third of
    /// `lease_ttl`. A stop or a timeout reaches the task here; if the agent loses its lease (a
    /// partition), it kills its tasks itself, and if it dies, its watchdog does: the attempts are
    /// retried elsewhere. SIGTERM or Ctrl-C claims nothing more and waits for running attempts;
    /// a second one stops at once.
    ///
    /// A task's log is written to `agent-spool/` in this host's state folder and shipped as it
    /// grows to the storage the scheduler names (`[scheduler] storage`: S3, with
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set here too, or a folder both hosts mount);
    /// declared outputs are kept there as well.
    Agent(crate::agent::AgentArgs),
    /// List the agents on this database (host, labels, slots used, last heartbeat, state) and
    /// the attempts waiting for one, saying why they wait.
    Agents(JsonFlag),
    /// Show the schedulers working on the database, from their heartbeats, and its path.
    ///
    /// Each scheduler records a heartbeat every 10 s with how many passes it made and how long
    /// they took. `up`: heard from within 30 s; `stale`: not stopped, but silent for longer
    /// (hung, killed with -9, or its host down); `stopped`: shut down cleanly.
    Status(crate::status::StatusArgs),
    /// Queue a manual run for the scheduler daemon to start; prints its run id.
    Trigger(ManualRunArgs),
    /// Run tasks of a finished run again, as new attempts with their full retry budget.
    ///
    /// The run keeps its logical date, its params (unless --param changes them) and its
    /// attempt history. The tasks rerun as the DAG file is now, a fix being the usual reason to
    /// clear (each attempt records the DAG version it ran). By default the run is queued for
    /// `vane scheduler`; --foreground reruns it here and now.
    Clear(ClearArgs),
    /// Stop a queued or running run: its running tasks are killed and no other starts.
    ///
    /// Works on a run that any process executes (a scheduler on any host, or `vane run`): the
    /// request is recorded, and the run's owner stops it within about a second. A queued run
    /// that has not started ends at once and never starts. The run ends failed, its reason
    /// saying who stopped it and why; its history stays, and `vane clear` reruns it.
    Stop(StopArgs),
    /// Mark a task of an ended run success or failed, with who and why (Airflow's "mark
    /// success").
    ///
    /// Marked success, the tasks that depend on it and did not run (upstream_failed, skipped)
    /// are queued for `vane scheduler`, which runs them; marked failed, the run ends failed.
    /// The task's reason records who marked it and why; its attempts stay as they were.
    Mark(MarkArgs),
    /// Run a DAG for every schedule tick in a date range, here, with bounded concurrency.
    ///
    /// Ticks that already succeeded are skipped (and failed ones too, unless --rerun-failed).
    /// The backfill is recorded: Ctrl-C pauses it (running tasks finish), and
    /// `vane backfills resume ID` continues it; `vane backfills pause|cancel ID` work from
    /// another terminal.
    Backfill(BackfillArgs),
    /// List backfills with their progress, or pause, resume or cancel one.
    Backfills(BackfillsArgs),
    /// List SLA misses: scheduled runs or tasks not finished by their deadline.
    Sla(ListArgs),
    /// Stop creating scheduled runs of a DAG (runs already going finish).
    Pause(DagArg),
    /// Resume scheduling a paused DAG; missed ticks follow its `catchup` policy.
    Unpause(DagArg),
    /// Show the numbers tasks reported (through $VANE_METRICS), as series over runs.
    Metrics(crate::metrics::MetricsArgs),
    /// Show the history of data checks of a DAG's `validate` tasks.
    Checks(crate::checks::ChecksArgs),
    /// Mark a run's data good, so that `auto` bounds and drift learn from it.
    MarkGood(crate::checks::MarkGoodArgs),
    /// List artifacts, or the versions of one.
    Artifacts(crate::lineage::ArtifactsArgs),
    /// Show what an artifact version was built from, and what was built from it.
    Lineage(crate::lineage::LineageArgs),
    /// Show what changed between two runs: DAG version, params, inputs, outputs, metrics.
    Diff(crate::lineage::DiffArgs),
    /// Say why a run failed or differs: the first failure, then what differs from the last
    /// successful run before it (DAG file and commits, params, inputs, checks, gates, metrics,
    /// the model in production, cache hits, retries, hosts), most likely cause first.
    Why(crate::why::WhyArgs),
    /// List models, or every version of one with its stage and how it got there.
    Models(crate::models::ModelsArgs),
    /// Approve a rollout waiting at a stage, recording who approved and the numbers they saw.
    Approve(crate::models::ApproveArgs),
    /// Reject a rollout waiting at a stage; it rolls back.
    Reject(crate::models::RejectArgs),
    /// Put a model version in a stage by hand, recording who and why.
    Promote(crate::models::PromoteArgs),
    /// Put the previous (or a given) production version of a model back, recording who and why.
    Rollback(crate::models::RollbackArgs),
    /// List alerts (open ones by default); --evaluate reads new history first, --stats shows
    /// each rule's precision.
    Alerts(crate::alerts::AlertsArgs),
    /// Acknowledge an alert, and say whether it was real or noise.
    Ack(crate::alerts::AckArgs),
    /// Resolve an alert by hand.
    Resolve(crate::alerts::ResolveArgs),
    /// Silence an alert's notifications for a while (at most 7d); it keeps counting.
    Snooze(crate::alerts::SnoozeArgs),
    /// Print a shell completion script: `vane completions bash > /etc/bash_completion.d/vane`.
    Completions(CompletionsArgs),
    /// Print vane's man page (roff), or write one page per command into a folder.
    ///
    /// `vane man | man -l -` reads it now; `vane man --dir /usr/local/share/man/man1` installs
    /// vane(1) and vane-COMMAND(1) for every command.
    Man(ManArgs),
    /// Run the work of a `validate` or `deploy` task; the engine starts this as the task's process.
    #[command(hide = true)]
    ExecBuiltin,
    /// Kill an agent's tasks when the agent dies; `vane agent` starts this itself.
    #[command(hide = true)]
    AgentWatchdog,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write vane.1 and vane-COMMAND.1 for every command into this folder instead.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// The commands as `vane --help` lists them, by what a person is doing; every visible
/// command is in exactly one group (a test checks it).
pub(crate) const GROUPS: &[(&str, &[&str])] = &[
    (
        "Write and check DAGs",
        &["validate", "schema", "graph", "next"],
    ),
    (
        "Run",
        &[
            "run",
            "trigger",
            "backfill",
            "backfills",
            "clear",
            "stop",
            "mark",
            "pause",
            "unpause",
        ],
    ),
    (
        "See what happened",
        &["runs", "show", "logs", "dags", "ticks", "sla", "status"],
    ),
    (
        "Long-running processes",
        &["scheduler", "serve", "agent", "agents"],
    ),
    (
        "Data, artifacts and metrics",
        &[
            "checks",
            "mark-good",
            "metrics",
            "artifacts",
            "lineage",
            "diff",
            "why",
        ],
    ),
    (
        "Models",
        &["models", "approve", "reject", "promote", "rollback"],
    ),
    ("Alerts", &["alerts", "ack", "resolve", "snooze"]),
    ("Shell", &["completions", "man"]),
];

/// The command line, with `--help` listing the commands by [`GROUPS`] rather than as one list
/// of 38.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let width = GROUPS
        .iter()
        .flat_map(|(_, names)| names.iter())
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    let mut groups = String::new();
    for (title, names) in GROUPS {
        groups.push_str(&format!("{title}:\n"));
        for name in *names {
            let about = cmd
                .find_subcommand(name)
                .and_then(|c| c.get_about())
                .map(ToString::to_string)
                .unwrap_or_default();
            groups.push_str(&format!("  {name:width$}  {about}\n"));
        }
        groups.push('\n');
    }
    cmd.help_template(format!(
        "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{groups}Options:\n{{options}}{{after-help}}"
    ))
}

#[derive(Debug, Args)]
pub(crate) struct SchedulerArgs {
    /// Seconds running tasks get to finish on shutdown before they are killed.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub(crate) grace: u64,
    /// Seconds a killed task gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub(crate) kill_grace: u64,
    /// Log format: human-readable lines, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub(crate) log_format: LogFormat,
    /// Also serve the web UI, the HTTP API and /metrics on this address (e.g. 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub(crate) auth: crate::http::HttpArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ManualRunArgs {
    /// Id of the DAG to run.
    pub(crate) dag_id: String,
    /// Override a parameter declared under [params] (repeatable).
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) params: Vec<(String, String)>,
    /// Logical date: YYYY-MM-DD (midnight in the DAG's time zone) or RFC 3339 [default: now].
    #[arg(long, value_name = "DATE")]
    pub(crate) date: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ClearArgs {
    /// The run whose tasks to rerun, by the id `vane runs` lists.
    pub(crate) run_id: vane_store::RunId,
    /// Only this task (repeatable) [default: every task].
    #[arg(long = "task", short = 't', value_name = "TASK")]
    pub(crate) tasks: Vec<String>,
    /// Also every task downstream of the chosen ones.
    #[arg(long)]
    pub(crate) downstream: bool,
    /// Only tasks that failed or ended upstream_failed.
    #[arg(long)]
    pub(crate) failed_only: bool,
    /// Rerun now in the foreground instead of queueing for the scheduler.
    #[arg(long)]
    pub(crate) foreground: bool,
    /// Rerun the run's logical date with this param changed (repeatable): the run keeps its
    /// date and its history, and `vane show` says what changed, who changed it and when.
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) params: Vec<(String, String)>,
    /// Who clears it, recorded with a change of params [default: $USER, or the OS user].
    #[arg(long)]
    pub(crate) by: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct MarkArgs {
    /// The ended run the task belongs to.
    pub(crate) run_id: vane_store::RunId,
    /// The task to mark.
    pub(crate) task: String,
    /// What it is marked as.
    #[arg(value_enum)]
    pub(crate) state: MarkState,
    /// Why, recorded as the task's reason.
    #[arg(long)]
    pub(crate) reason: Option<String>,
    /// Who marks it [default: $USER, or the operating system's user].
    #[arg(long)]
    pub(crate) by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MarkState {
    Success,
    Failed,
}

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// The queued or running run to stop.
    pub(crate) run_id: vane_store::RunId,
    /// Stop only this running task: it fails, never retried, and the run goes on, what depends
    /// on it following its trigger rule.
    #[arg(long, value_name = "TASK")]
    pub(crate) task: Option<String>,
    /// Why, recorded in the run's reason (e.g. "bad input data").
    #[arg(long)]
    pub(crate) reason: Option<String>,
    /// Who stops it [default: $USER, or the operating system's user].
    #[arg(long)]
    pub(crate) by: Option<String>,
    /// Return once the stop is recorded instead of waiting for the run to end.
    #[arg(long)]
    pub(crate) no_wait: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BackfillArgs {
    /// The DAG to backfill; its `schedule` gives the ticks.
    pub(crate) dag_id: String,
    /// Override a parameter declared under [params] for every run (repeatable).
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) params: Vec<(String, String)>,
    /// Only this task and what it needs upstream (repeatable); the other tasks are skipped.
    #[arg(long = "task", short = 't', value_name = "TASK")]
    pub(crate) tasks: Vec<String>,
    /// Skip this task (repeatable); what depends on it follows its trigger rule.
    #[arg(long = "exclude", value_name = "TASK")]
    pub(crate) exclude: Vec<String>,
    /// First date: YYYY-MM-DD (start of that day in the DAG's time zone) or RFC 3339.
    #[arg(long, value_name = "DATE")]
    pub(crate) from: String,
    /// Last date, included: YYYY-MM-DD (the whole day) or RFC 3339.
    #[arg(long, value_name = "DATE")]
    pub(crate) to: String,
    /// Print each logical date and what the backfill would do with it and with each task
    /// (run, skip and why, or reuse from the cache when inputs are unchanged), and stop.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Newest dates first.
    #[arg(long)]
    pub(crate) reverse: bool,
    /// Rerun the failed tasks of dates whose run failed.
    #[arg(long)]
    pub(crate) rerun_failed: bool,
    /// Let deploy tasks promote models of these past dates. By default a deploy task whose run
    /// is older (by logical date) than the last run that put a version of its model in
    /// production promotes nothing and ends skipped (latest-only), even after a person's
    /// rollback: a backfill never redeploys the past by accident.
    #[arg(long)]
    pub(crate) redeploy_past: bool,
    /// Most runs of the backfill at once [default: the DAG's max_active_runs].
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_active: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct BackfillsArgs {
    #[command(subcommand)]
    pub(crate) action: Option<BackfillAction>,
    /// Only backfills of this DAG.
    #[arg(long)]
    pub(crate) dag: Option<String>,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BackfillAction {
    /// Stop starting runs; running ones finish.
    Pause { id: i64 },
    /// Continue a paused or interrupted backfill, here.
    Resume { id: i64 },
    /// Stop for good: running tasks are killed, unstarted runs fail.
    Cancel { id: i64 },
}

#[derive(Debug, Args)]
pub(crate) struct DagArg {
    /// The DAG's id.
    pub(crate) dag_id: String,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// DAG files or folders [default: the DAG folder].
    pub(crate) paths: Vec<PathBuf>,
    /// Treat warnings (such as raw substitution) as errors.
    #[arg(long)]
    pub(crate) deny_warnings: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    /// Print the DAG file reference as Markdown (the README's reference) instead.
    #[arg(long)]
    pub(crate) markdown: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) run: ManualRunArgs,
    /// Seconds a killed task gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub(crate) kill_grace: u64,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The run whose logs to print.
    pub(crate) run_id: vane_store::RunId,
    /// The task [default: every task that ran, in the order they started, each under a header].
    pub(crate) task: Option<String>,
    /// Attempt number [default: the latest].
    #[arg(long, requires = "task")]
    pub(crate) attempt: Option<u32>,
    /// Keep printing what the attempt writes until it ends, like `tail -f`, from any host: a
    /// task an agent runs ships its log to the storage as it goes.
    #[arg(long, short = 'f', requires = "task")]
    pub(crate) follow: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only those of this DAG.
    pub(crate) dag_id: Option<String>,
    /// How many to show, newest first.
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    #[command(flatten)]
    pub(crate) list: ListArgs,
    /// Only runs in this state: queued, running, success or failed.
    #[arg(long, value_name = "STATE")]
    pub(crate) state: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The run to show.
    pub(crate) run_id: vane_store::RunId,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct GraphArgs {
    /// The DAG to draw.
    pub(crate) dag_id: String,
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub(crate) format: GraphFormat,
}

#[derive(Debug, Args)]
pub(crate) struct NextArgs {
    /// The DAG whose schedule to show.
    pub(crate) dag_id: String,
    /// How many logical dates to print.
    #[arg(long, default_value_t = 5)]
    pub(crate) count: usize,
    /// Start after this time: YYYY-MM-DD (midnight in the DAG's time zone) or RFC 3339 [default: now].
    #[arg(long, value_name = "TIME")]
    pub(crate) after: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct TicksArgs {
    /// The DAG whose ticks to show.
    pub(crate) dag_id: String,
    /// How many of the latest ticks to show.
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum GraphFormat {
    Text,
    Dot,
    Mermaid,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A new command shows up in `vane --help` only once it is given a group.
    #[test]
    fn every_visible_command_is_in_exactly_one_help_group() {
        let grouped: Vec<&str> = GROUPS
            .iter()
            .flat_map(|(_, names)| names.iter().copied())
            .collect();
        let mut visible: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name().to_owned())
            .collect();
        visible.sort();
        let mut sorted: Vec<String> = grouped.iter().map(|s| (*s).to_owned()).collect();
        sorted.sort();
        assert_eq!(
            sorted, visible,
            "GROUPS must list each visible command once"
        );
        let help = command().render_long_help().to_string();
        for name in grouped {
            assert_eq!(
                help.matches(&format!("\n  {name} ")).count(),
                1,
                "{name}:\n{help}"
            );
        }
        assert!(help.contains("Options:\n"), "{help}");
        assert!(help.contains("Exit codes:"), "{help}");
    }
}
