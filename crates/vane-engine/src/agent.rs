//! `vane agent`: runs attempts that runs' owners handed out, on a host with the labels they
//! need.
//!
//! The agent holds a lease (renewed in the background by [`crate::Lease`]) and claims queued
//! attempts up to its free slots. Every write it makes about an attempt carries the attempt's
//! token and is refused once the attempt was taken from it; a process whose attempt is no
//! longer the agent's is killed at once. When the lease is lost (no renewal for a whole time
//! to live: a partition, a paused VM) every process is killed, since the attempts are being
//! retried elsewhere; the agent then takes a new lease and goes on. A watchdog process kills
//! the jobs if the agent itself dies. What the agent talks to is behind [`AgentLink`], so a
//! transport other than the database needs no change here.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};
use vane_exec::{Executor, KillSwitch, Outcome, Watchdog};
use vane_store::{Claimed, StoreError, StoreThreads};

use crate::EngineError;
use crate::remote::{job_from_json, outcome_to_json};
use crate::shipping::{Shipment, Shipper};

/// What an agent offers and how it behaves.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub slots: u32,
    /// How long the agent waits for new work when it found none, at most.
    pub idle_poll: Duration,
    /// The `vane` binary that runs built-in tasks (validate, deploy) here.
    pub exe: PathBuf,
    /// Where a task's log is written on this host before it is shipped to the storage.
    pub spool: PathBuf,
    /// Woken when work may be waiting (PostgreSQL's `NOTIFY`): claim now rather than at the
    /// next poll.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

/// What an agent says to the rest of vane. The database is one transport; another (an HTTP
/// gateway for hosts outside the database's network) implements the same calls.
pub trait AgentLink: crate::LeaseLink {
    /// Records this agent under `lease`.
    fn register(
        &self,
        lease: &str,
        config: &AgentConfig,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Claims up to `max` attempts this agent's labels satisfy.
    fn claim(
        &self,
        lease: &str,
        labels: &BTreeMap<String, String>,
        max: u32,
    ) -> impl Future<Output = Result<Vec<Claimed>, StoreError>> + Send;
    /// The process of a claimed attempt started.
    fn started(
        &self,
        id: i64,
        token: i64,
        pid: u32,
        start_time: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// How the process of a claimed attempt ended.
    fn finished(
        &self,
        id: i64,
        token: i64,
        outcome: Value,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A chunk of a claimed attempt's log is in the storage at `key`: it is part of the log
    /// from now on.
    fn log_chunk(
        &self,
        id: i64,
        token: i64,
        key: String,
        bytes: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Of `held`, the attempts to kill: cancelled by their owner, or no longer this agent's.
    fn to_kill(
        &self,
        lease: &str,
        held: Vec<(i64, i64)>,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
}

/// The database as an agent's transport.
#[derive(Clone)]
pub struct StoreLink(pub StoreThreads);

impl crate::LeaseLink for StoreLink {
    async fn acquire(
        &self,
        id: String,
        host: String,
        pid: u32,
        role: vane_store::LeaseRole,
        ttl: Duration,
    ) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        self.0.acquire(id, host, pid, role, ttl).await
    }

    async fn renew(
        &self,
        id: String,
        ttl: Duration,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.0.renew(id, ttl).await
    }

    async fn release(&self, id: String) -> Result<(), StoreError> {
        crate::LeaseLink::release(&self.0, id).await
    }

    async fn stop_requests(
        &self,
        id: String,
    ) -> Result<Vec<(vane_store::RunId, Option<String>)>, StoreError> {
        self.0.stop_requests(id).await
    }
}

impl AgentLink for StoreLink {
    async fn register(&self, lease: &str, config: &AgentConfig) -> Result<(), StoreError> {
        let (lease, host, labels, slots) = (
            lease.to_owned(),
            config.host.clone(),
            config.labels.clone(),
            config.slots,
        );
        self.0
            .call(move |s| s.register_agent(&lease, &host, &labels, slots))
            .await
    }

    async fn claim(
        &self,
        lease: &str,
        labels: &BTreeMap<String, String>,
        max: u32,
    ) -> Result<Vec<Claimed>, StoreError> {
        let (lease, labels) = (lease.to_owned(), labels.clone());
        self.0
            .call(move |s| s.claim_dispatches(&lease, &labels, max))
            .await
    }

    async fn started(
        &self,
        id: i64,
        token: i64,
        pid: u32,
        start_time: Option<u64>,
    ) -> Result<(), StoreError> {
        self.0
            .call(move |s| s.dispatch_started(id, token, pid, start_time))
            .await
    }

    async fn finished(&self, id: i64, token: i64, outcome: Value) -> Result<(), StoreError> {
        self.0
            .call(move |s| s.finish_dispatch(id, token, &outcome))
            .await
    }

    async fn log_chunk(
        &self,
        id: i64,
        token: i64,
        key: String,
        bytes: u64,
    ) -> Result<(), StoreError> {
        self.0
            .call(move |s| s.add_log_chunk(id, token, &key, bytes))
            .await
    }

    async fn to_kill(&self, lease: &str, held: Vec<(i64, i64)>) -> Result<Vec<i64>, StoreError> {
        let lease = lease.to_owned();
        self.0
            .call(move |s| s.dispatches_to_kill(&lease, &held))
            .await
    }
}

/// An attempt this agent runs.
struct Running {
    token: i64,
    kill: KillSwitch,
    pgid: u32,
    /// Why it was killed, when the agent killed it for a reason of its own.
    killed_because: Option<String>,
    /// Recording its start; its end is reported after, never before.
    started: Option<tokio::task::JoinHandle<()>>,
    /// Shipping its log; its end is reported once the whole log is shipped.
    shipper: Option<Shipper>,
    /// Files the task writes for vane (`$VANE_METRICS`, ...) pointed at this host's spool,
    /// handed back with the outcome: by variable, the file.
    handed_back: Vec<(String, PathBuf)>,
    /// The outputs it declares, to hash and keep in the content store here once it succeeded.
    outputs: Option<Outputs>,
}

/// The declared outputs of an attempt and the content store to keep them in.
struct Outputs {
    content: crate::artifacts::ContentStore,
    declared: Vec<(String, PathBuf)>,
}

impl Outputs {
    fn of(job: &Value, spool: &std::path::Path) -> Result<Option<Self>, String> {
        let (Some(url), Some(listed)) =
            (job["content_storage"].as_str(), job["outputs"].as_array())
        else {
            return Ok(None);
        };
        let objects = vane_objects::open(url)
            .map_err(|e| format!("cannot open the content store {url}: {e}"))?;
        let declared = listed
            .iter()
            .filter_map(|o| {
                Some((
                    o["name"].as_str()?.to_owned(),
                    PathBuf::from(o["path"].as_str()?),
                ))
            })
            .collect();
        Ok(Some(Self {
            content: crate::artifacts::ContentStore {
                url: url.to_owned(),
                objects,
                cache: spool.join("cache"),
            },
            declared,
        }))
    }
}

/// The kill switches of the attempts running here, by dispatch id.
type Kills = Arc<Mutex<HashMap<i64, KillSwitch>>>;

/// Kills every attempt running here each time the agent's lease is lost: they are being
/// retried elsewhere.
async fn fence(mut lost: watch::Receiver<u64>, kills: Kills) {
    while lost.changed().await.is_ok() {
        if let Ok(kills) = kills.lock() {
            for (id, kill) in kills.iter() {
                error!(
                    dispatch = id,
                    "Lease lost: killing the attempt, which runs again elsewhere."
                );
                kill.kill();
            }
        }
    }
}

/// How many times (every half second) an outcome is offered while the database is unreachable.
const REPORT_TRIES: u32 = 600;

/// How often running attempts are checked for a cancel or for having been taken away.
const KILL_CHECK: Duration = Duration::from_millis(250);

/// Runs the agent until `shutdown` turns true; then claims nothing more, waits for its running
/// attempts to end and reports them, and gives its lease up.
///
/// # Errors
/// Fails when the lease cannot be taken at start.
pub async fn run_agent<L: AgentLink>(
    link: &L,
    lease: &crate::Lease,
    config: &AgentConfig,
    executor: &dyn Executor,
    mut watchdog: Option<Watchdog>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    let mut lost = lease.lost();
    // Killing on a lost lease must not wait for this loop, which may be stuck in a database
    // call that the same partition hangs: a task of its own does it.
    let kills: Kills = Arc::default();
    let fencer = tokio::spawn(fence(lease.lost(), Arc::clone(&kills)));
    let mut current = lease.current(link).await?;
    link.register(&current, config).await?;
    info!(lease = %current, host = %config.host, labels = ?config.labels, slots = config.slots, "Agent ready.");
    let mut running: HashMap<i64, Running> = HashMap::new();
    let mut ends: JoinSet<(i64, Outcome)> = JoinSet::new();
    let mut reports: JoinSet<()> = JoinSet::new();
    let mut wait = Duration::ZERO;
    let mut kill_check = tokio::time::interval(KILL_CHECK);
    kill_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = false;
    loop {
        if draining && running.is_empty() {
            break;
        }
        tokio::select! {
            changed = shutdown.changed(), if !draining => {
                if changed.is_err() || *shutdown.borrow() {
                    info!(running = running.len(), "Agent stopping: claiming nothing more, waiting for running attempts.");
                    draining = true;
                }
            }
            Ok(_) = lost.changed() => {
                // Everything claimed under the lost lease is being retried elsewhere.
                for r in running.values_mut() {
                    r.killed_because = Some("the agent's lease was lost".into());
                    r.kill.kill();
                }
                match lease.current(link).await {
                    Ok(id) => {
                        current = id;
                        if let Err(e) = link.register(&current, config).await {
                            warn!(%e, "Could not register under the new lease; trying again.");
                        }
                    }
                    Err(e) => warn!(%e, "Could not take a new lease; trying again."),
                }
            }
            Some(ended) = ends.join_next(), if !ends.is_empty() => {
                let Ok((id, outcome)) = ended else { continue };
                let Some(r) = running.remove(&id) else { continue };
                if let Ok(mut kills) = kills.lock() {
                    kills.remove(&id);
                }
                if let Some(w) = watchdog.as_mut() {
                    let _ = w.forget(r.pgid);
                }
                // On a task of its own: a report retried through an outage holds nothing up.
                let link = link.clone();
                reports.spawn(async move {
                    let mut r = r;
                    if let Some(started) = r.started.take() {
                        let _ = started.await;
                    }
                    if let Some(shipper) = r.shipper.take() {
                        shipper.finish().await;
                    }
                    report(&link, id, &r, &outcome).await;
                });
                wait = Duration::ZERO;
            }
            Some(_) = reports.join_next(), if !reports.is_empty() => {}
            () = config.wake.notified(), if !draining => wait = Duration::ZERO,
            _ = kill_check.tick(), if !running.is_empty() => {
                let held: Vec<(i64, i64)> = running.iter().map(|(id, r)| (*id, r.token)).collect();
                match link.to_kill(&current, held).await {
                    Ok(ids) => for id in ids {
                        if let Some(r) = running.get_mut(&id) && r.killed_because.is_none() {
                            info!(dispatch = id, "Killing an attempt its run's owner stopped or took away.");
                            r.killed_because = Some("stopped by its run's owner".into());
                            r.kill.kill();
                        }
                    },
                    Err(e) => warn!(%e, "Could not look for attempts to kill."),
                }
            }
            () = tokio::time::sleep(wait), if !draining => {
                let free = config.slots.saturating_sub(running.len() as u32);
                if free == 0 {
                    wait = config.idle_poll;
                    continue;
                }
                let claimed = match link.claim(&current, &config.labels, free).await {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        warn!(%e, "Could not claim attempts.");
                        wait = config.idle_poll;
                        continue;
                    }
                };
                wait = if claimed.is_empty() {
                    (wait * 2).clamp(Duration::from_millis(5), config.idle_poll)
                } else {
                    Duration::ZERO
                };
                for claim in claimed {
                    let id = claim.id;
                    start(link, config, executor, watchdog.as_mut(), claim, &mut running, &mut ends).await;
                    if let (Some(r), Ok(mut kills)) = (running.get(&id), kills.lock()) {
                        kills.insert(id, r.kill.clone());
                    }
                }
            }
        }
    }
    fencer.abort();
    while reports.join_next().await.is_some() {}
    lease.release(link).await;
    info!("Agent stopped.");
    Ok(())
}

/// Starts a claimed attempt's process and says so; an attempt that cannot start is reported
/// as lost with why, and one whose start is refused (no longer ours) is killed at once.
async fn start<L: AgentLink>(
    link: &L,
    config: &AgentConfig,
    executor: &dyn Executor,
    watchdog: Option<&mut Watchdog>,
    claim: Claimed,
    running: &mut HashMap<i64, Running>,
    ends: &mut JoinSet<(i64, Outcome)>,
) {
    let (id, token) = (claim.id, claim.token);
    // A cache hit of a task that runs here: its outputs are put back from the content store on
    // this host, where the tasks after it read them; no command runs.
    if let Some(items) = claim.job["restore"].as_array().cloned() {
        let (link, url, spool) = (
            link.clone(),
            claim.job["content_storage"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            config.spool.clone(),
        );
        tokio::spawn(async move {
            let restored =
                tokio::task::spawn_blocking(move || restore_here(&url, &spool, &items)).await;
            let outcome = match restored {
                Ok(Ok(())) => Outcome::Exited { code: 0 },
                Ok(Err(error)) => Outcome::Lost { error },
                Err(e) => Outcome::Lost {
                    error: format!("the restore failed: {e}"),
                },
            };
            if let Err(e) = link.finished(id, token, outcome_to_json(&outcome)).await {
                warn!(dispatch = id, %e, "Could not report a restore.");
            }
        });
        return;
    }
    let mut job = match job_from_json(&claim.job) {
        Ok(job) => job,
        Err(why) => {
            let lost = Outcome::Lost { error: why };
            let _ = link.finished(id, token, outcome_to_json(&lost)).await;
            return;
        }
    };
    if claim.job["builtin"] == true {
        job.command = format!(
            "{} exec-builtin",
            vane_dag::shell_quote(&config.exe.display().to_string())
        );
    }
    // The log goes to the storage every host reads, through a spool file here.
    let mut handed_back = Vec::new();
    let mut outputs = None;
    let shipping = match (
        claim.job["log_storage"].as_str(),
        claim.job["log_key"].as_str(),
    ) {
        (Some(url), Some(prefix)) => match vane_objects::open(url)
            .map_err(|e| e.to_string())
            .and_then(|objects| Ok((objects, Outputs::of(&claim.job, &config.spool)?)))
        {
            Ok((objects, declared)) => {
                outputs = declared;
                job.log_path = config.spool.join(format!("{id}.log"));
                for (name, value) in &mut job.env {
                    if crate::remote::HANDED_BACK.contains(&name.as_str()) {
                        let file = config.spool.join(format!("{id}.{}", name.to_lowercase()));
                        let _ = std::fs::remove_file(&file);
                        *value = file.display().to_string();
                        handed_back.push((name.clone(), file));
                    }
                }
                Some((objects, prefix.to_owned()))
            }
            Err(e) => {
                let lost = Outcome::Lost {
                    error: format!(
                        "the agent on {} cannot open the storage {url}: {e}",
                        config.host
                    ),
                };
                let _ = link.finished(id, token, outcome_to_json(&lost)).await;
                return;
            }
        },
        // From a scheduler that ships no logs: the log path is shared storage itself.
        _ => None,
    };
    let job_log = job.log_path.clone();
    let launched = match executor.launch(job) {
        Ok(launched) => launched,
        Err(e) => {
            let lost = Outcome::Lost {
                error: format!("the agent on {} could not start it: {e}", config.host),
            };
            if let Err(e) = link.finished(id, token, outcome_to_json(&lost)).await {
                warn!(dispatch = id, %e, "Could not report an attempt that could not start.");
            }
            return;
        }
    };
    if let Some(w) = watchdog {
        let _ = w.watch(launched.pid);
    }
    info!(dispatch = id, run_id = claim.run.0, task = %claim.task, attempt = claim.attempt, pid = launched.pid, "Attempt started.");
    let mut r = Running {
        token,
        kill: launched.kill.clone(),
        pgid: launched.pid,
        killed_because: None,
        started: None,
        handed_back,
        outputs,
        shipper: shipping.map(|(objects, prefix)| {
            Shipper::start(Shipment {
                link: link.clone(),
                objects,
                spool: job_log.clone(),
                prefix,
                id,
                token,
            })
        }),
    };
    // Recorded on a task of its own: a database that hangs must not hold up this loop, which
    // also ends and kills attempts.
    let (reporter, kill, pid, start_time) = (
        link.clone(),
        r.kill.clone(),
        launched.pid,
        launched.start_time,
    );
    r.started = Some(tokio::spawn(async move {
        match reporter.started(id, token, pid, start_time).await {
            Ok(()) => {}
            // No longer ours: it may run elsewhere already.
            Err(e @ StoreError::Fenced { .. }) => {
                warn!(dispatch = id, %e, "The start was refused; killing the attempt.");
                kill.kill();
            }
            // The database is out of reach: the attempt goes on; if the agent's lease is lost
            // meanwhile, it is killed then.
            Err(e) => warn!(dispatch = id, %e, "Could not record the start; the attempt goes on."),
        }
    }));
    running.insert(id, r);
    let done = launched.done;
    ends.spawn(async move {
        let outcome = done.await.unwrap_or_else(|_| Outcome::Lost {
            error: "the agent lost track of the process".into(),
        });
        (id, outcome)
    });
}

/// Puts a cache hit's outputs back on this host from the content store at `url`.
fn restore_here(url: &str, spool: &std::path::Path, items: &[Value]) -> Result<(), String> {
    let objects =
        vane_objects::open(url).map_err(|e| format!("cannot open the content store {url}: {e}"))?;
    let content = crate::artifacts::ContentStore {
        url: url.to_owned(),
        objects,
        cache: spool.join("cache"),
    };
    for item in items {
        let text = |k: &str| item[k].as_str().unwrap_or_default();
        let kind = text("kind")
            .parse()
            .map_err(|_| format!("a restore names an unknown kind `{}`", text("kind")))?;
        let path = PathBuf::from(text("path"));
        content
            .restore(item["stored"].as_str(), text("hash"), kind, &path)
            .map_err(|e| {
                format!(
                    "cannot restore output `{}` to {}: {e}",
                    text("name"),
                    path.display()
                )
            })?;
    }
    Ok(())
}

/// Reports how an attempt ended, trying again while the database is unreachable, for as long
/// as the report can still count.
async fn report<L: AgentLink>(link: &L, id: i64, r: &Running, outcome: &Outcome) {
    let mut value = outcome_to_json(outcome);
    let mut files = serde_json::Map::new();
    for (name, path) in &r.handed_back {
        let mut text = String::new();
        let read = std::fs::File::open(path).and_then(|f| {
            std::io::Read::read_to_string(
                &mut std::io::Read::take(f, crate::remote::HANDED_BACK_MAX),
                &mut text,
            )
        });
        let _ = std::fs::remove_file(path);
        if read.is_ok() {
            files.insert(name.clone(), Value::String(text));
        }
    }
    if !files.is_empty() {
        value["files"] = Value::Object(files);
    }
    // Hashed and kept here, where the task wrote them: the run's owner may share no disk.
    if let Some(outputs) = &r.outputs
        && outcome.success()
    {
        let (content, declared) = (outputs.content.clone(), outputs.declared.clone());
        match tokio::task::spawn_blocking(move || {
            crate::artifacts::keep_declared(&content, declared)
        })
        .await
        {
            Ok(Ok(kept)) => {
                value["outputs"] = kept
                    .iter()
                    .map(crate::artifacts::KeptOutput::to_json)
                    .collect();
            }
            Ok(Err(why)) => value["outputs_error"] = why.into(),
            Err(e) => value["outputs_error"] = format!("keeping the outputs failed: {e}").into(),
        }
    }
    // Long enough to outlast a partition that cost the agent its lease, so that the refusal
    // is heard and logged when it heals.
    for attempt in 0..REPORT_TRIES {
        match link.finished(id, r.token, value.clone()).await {
            Ok(()) => {
                info!(dispatch = id, outcome = %outcome, "Attempt ended.");
                return;
            }
            Err(StoreError::Fenced { why, .. }) => {
                warn!(dispatch = id, outcome = %outcome, %why, killed = r.killed_because.as_deref(), "The outcome was refused: the attempt is no longer this agent's.");
                return;
            }
            Err(e) => {
                warn!(dispatch = id, %e, attempt, "Could not report how an attempt ended; trying again.");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    error!(
        dispatch = id,
        "Gave up reporting how an attempt ended; its owner will find the agent's lease expired or the attempt running."
    );
}
