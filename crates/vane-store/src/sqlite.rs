//! The embedded SQLite backend.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

mod alerts;
mod artifacts;
mod checks;
mod dispatch;
mod heartbeat;
mod lease;
mod metrics;
mod observe;
mod registry;

use crate::lease::Fence;
use crate::types::*;
use crate::{Result, Store, StoreError};

/// Schema migrations, applied in order; `PRAGMA user_version` holds how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_scheduler.sql"),
    include_str!("../migrations/0003_clear.sql"),
    include_str!("../migrations/0004_backfill.sql"),
    include_str!("../migrations/0005_sla.sql"),
    include_str!("../migrations/0006_metrics.sql"),
    include_str!("../migrations/0007_slots.sql"),
    include_str!("../migrations/0008_artifacts.sql"),
    include_str!("../migrations/0009_checks.sql"),
    include_str!("../migrations/0010_registry.sql"),
    include_str!("../migrations/0011_cache.sql"),
    include_str!("../migrations/0012_rollout_lock.sql"),
    include_str!("../migrations/0013_alerts.sql"),
    include_str!("../migrations/0014_scheduler_heartbeat.sql"),
    include_str!("../migrations/0015_leases.sql"),
    include_str!("../migrations/0016_alert_horizon.sql"),
    include_str!("../migrations/0017_stop_requests.sql"),
    include_str!("../migrations/0018_alert_delivery.sql"),
    include_str!("../migrations/0019_backfill_redeploy.sql"),
    include_str!("../migrations/0020_param_changes.sql"),
    include_str!("../migrations/0021_task_stops.sql"),
    include_str!("../migrations/0022_agents.sql"),
    include_str!("../migrations/0023_log_chunks.sql"),
    include_str!("../migrations/0024_run_timezone.sql"),
    include_str!("../migrations/0025_runs_by_logical_date.sql"),
    include_str!("../migrations/0026_apply_in_one_trip.sql"),
    include_str!("../migrations/0027_backfill_positions.sql"),
];

/// How long a writer waits for another process (a scheduler, a CLI command) to finish its
/// transaction before giving up. Transactions here last milliseconds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SqliteStore {
    conn: Connection,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.conn.path())
            .finish()
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    if is_busy(&e) {
        return StoreError::Busy(Box::new(e));
    }
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && matches!(
            f.code,
            rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::SystemIoFailure
        )
    {
        return StoreError::Unwritable(Box::new(e));
    }
    StoreError::Backend(Box::new(e))
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        backend(e)
    }
}

/// Whether an error is SQLite's "the database is busy or locked".
fn is_busy(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        error.downcast_ref::<rusqlite::Error>(),
        Some(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

pub(super) fn ts(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn parse_ts(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp `{text}`: {e}")))
}

pub(super) fn parse_enum<T: FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse().map_err(StoreError::Corrupt)
}

/// A write transaction from [`SqliteStore::write_tx`]: the whole transaction when it began
/// one, a savepoint inside the caller's when it did not. Dropped without [`WriteTx::commit`],
/// it undoes its writes.
pub(super) struct WriteTx<'c> {
    conn: &'c Connection,
    outer: bool,
    ended: bool,
}

impl WriteTx<'_> {
    /// Commits the transaction, or, nested, keeps the writes for the outer one to commit.
    pub(super) fn commit(mut self) -> Result<()> {
        self.conn.execute_batch(if self.outer {
            "COMMIT"
        } else {
            "RELEASE nested"
        })?;
        self.ended = true;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Errors are ignored: some failures (a full disk, an interrupted statement) make
        // SQLite roll the transaction back itself, leaving nothing to undo here.
        if self.outer {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        } else {
            let _ = self
                .conn
                .execute_batch("ROLLBACK TO nested; RELEASE nested");
        }
    }
}

/// Why the folder of the database at `path` cannot be written, if it cannot: a file is made
/// there and removed, the one test that sees a read-only mount, permissions and a full inode
/// table alike. Only asked after opening failed.
fn read_only_folder(path: &Path) -> Option<String> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let probe = folder.join(format!(".vane-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!("{} cannot be written ({e})", folder.display())),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// # Errors
    /// Fails when the file cannot be created or opened, or was written by a newer vane.
    pub fn open(path: &Path) -> Result<Self> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_err(Box::new(e)))?;
        }
        let conn = Connection::open(path).map_err(|e| open_err(Box::new(e)))?;
        Self::setup(conn).map_err(|e| match read_only_folder(path) {
            // SQLite says only "unable to open database file" when its folder is read-only
            // (the WAL's files cannot be made): name the folder and what to do.
            Some(why) => StoreError::Unwritable(
                format!("its folder {why}; mount it read-write, give this user write access, or point --db elsewhere").into(),
            ),
            None => e,
        })
    }

    /// A private database that vanishes with the value; for tests.
    ///
    /// # Errors
    /// Fails only if SQLite itself cannot allocate.
    pub fn open_in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(conn: Connection) -> Result<Self> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let store = Self { conn };
        // Two processes opening a new database at once (a scheduler and a command on a fresh
        // deploy) race to switch it to WAL and to migrate it; SQLite answers the loser "busy"
        // at once rather than waiting, so the loser waits here and tries again.
        let started = std::time::Instant::now();
        loop {
            match store.prepare() {
                Err(StoreError::Busy(_)) if started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other.map(|()| store),
            }
        }
    }

    fn prepare(&self) -> Result<()> {
        // WAL lets the CLI read while a run writes; FULL makes every commit survive power loss,
        // which is what "recorded before acted on" needs. A commit costs well under a millisecond.
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        // After a checkpoint the WAL is cut back to this size, so a burst of writes (or a
        // stretch of a full disk) does not leave it at its largest for good.
        self.conn
            .pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        self.migrate()
    }

    /// A transaction that holds the write lock from its start. A deferred one that reads
    /// first and writes later cannot wait for another writer (SQLite answers "database is
    /// locked" at once instead of honouring the busy timeout), and vane processes share the
    /// database: a scheduler, CLI commands, backfills.
    ///
    /// Inside a transaction already (see [`crate::AlertStore::atomically`]) it opens a
    /// savepoint instead, so the caller's work commits with the outer transaction or not at
    /// all, while a failure inside still undoes only this part.
    /// [`Store::apply`], as the owner holding `fence` when there is one: the fence is checked
    /// in the same transaction as the changes are written.
    pub(super) fn apply_as(&self, fence: Option<&Fence>, changes: &[Change]) -> Result<()> {
        // A pid only means something while this machine stays up: after a power loss every
        // recorded process is gone anyway. So a batch of nothing but pids skips the fsync
        // (WAL with synchronous=NORMAL still survives a crash of vane itself), which halves
        // the fsyncs per task; every state transition keeps synchronous=FULL.
        // SQLite refuses to change the safety level inside a transaction; nested in one, the
        // batch commits with it anyway.
        let volatile = self.conn.is_autocommit()
            && changes
                .iter()
                .all(|c| matches!(c, Change::AttemptProcess { .. }));
        if volatile {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let result = (|| {
            let tx = self.write_tx()?;
            if let Some(fence) = fence {
                lease::check_fence(&tx, fence)?;
            }
            for change in changes {
                Self::apply_one(&tx, change)?;
            }
            tx.commit()?;
            Ok(())
        })();
        if volatile {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        result
    }

    pub(super) fn write_tx(&self) -> Result<WriteTx<'_>> {
        let outer = self.conn.is_autocommit();
        self.conn.execute_batch(if outer {
            "BEGIN IMMEDIATE"
        } else {
            "SAVEPOINT nested"
        })?;
        Ok(WriteTx {
            conn: &self.conn,
            outer,
            ended: false,
        })
    }

    fn migrate(&self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        // Every command opens the database; most find it current and need no write lock.
        let current: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current == known {
            return Ok(());
        }
        // Under the write lock, read the version again: another process may have migrated.
        let tx = self.write_tx()?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        for sql in &MIGRATIONS[version as usize..] {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", known)?;
        tx.commit()?;
        Ok(())
    }

    /// Schema version after migrations.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Runs SQLite's own consistency check; `Ok(true)` when it reports `ok`.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    pub fn integrity_check(&self) -> Result<bool> {
        let result: String = self
            .conn
            .pragma_query_value(None, "integrity_check", |r| r.get(0))?;
        Ok(result == "ok")
    }

    fn backfills_where(
        &self,
        id: Option<i64>,
        dag_id: Option<&str>,
    ) -> Result<Vec<BackfillRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM backfills WHERE (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR dag_id = ?2)
             ORDER BY id DESC",
        )?;
        let mut rows = stmt.query(params![id, dag_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(BackfillRecord {
                id: row.get("id")?,
                dag_id: row.get("dag_id")?,
                from: parse_ts(&row.get::<_, String>("from_date")?)?,
                to: parse_ts(&row.get::<_, String>("to_date")?)?,
                reverse: row.get("reverse")?,
                rerun_failed: row.get("rerun_failed")?,
                max_active: row.get::<_, i64>("max_active")? as usize,
                redeploy_past: row.get("redeploy_past")?,
                state: parse_enum(&row.get::<_, String>("state")?)?,
                created_at: parse_ts(&row.get::<_, String>("created_at")?)?,
                updated_at: parse_ts(&row.get::<_, String>("updated_at")?)?,
                runs: Vec::new(),
            });
        }
        let mut runs = self.conn.prepare_cached(
            "SELECT runs.id, runs.state FROM backfill_runs JOIN runs ON runs.id = backfill_runs.run_id
             WHERE backfill_id = ?1 ORDER BY position",
        )?;
        for backfill in &mut out {
            let mut rows = runs.query(params![backfill.id])?;
            while let Some(row) = rows.next()? {
                backfill
                    .runs
                    .push((row.get(0)?, parse_enum(&row.get::<_, String>(1)?)?));
            }
        }
        Ok(out)
    }

    /// The runs `sql` selects (`runs.*`, the DAG version's hash, whether the owner's lease is
    /// held) with `values` and then `states` as its parameters; rows that cannot be read are
    /// left out (see [`crate::readable_runs`]).
    fn query_runs(
        &self,
        sql: &str,
        mut values: Vec<Box<dyn rusqlite::ToSql>>,
        states: &[RunState],
    ) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        values.extend(
            states
                .iter()
                .map(|s| Box::new(s.as_str()) as Box<dyn rusqlite::ToSql>),
        );
        let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
        let mut records = Vec::new();
        while let Some(row) = rows.next()? {
            records.push(Self::run_record(row));
        }
        crate::readable_runs(records)
    }

    fn run_record(row: &Row<'_>) -> Result<RunRecord> {
        let git_commit: Option<String> = row.get("git_commit")?;
        let git_dirty: Option<bool> = row.get("git_dirty")?;
        let params: String = row.get("params")?;
        let opt_ts = |name: &str| -> Result<Option<DateTime<Utc>>> {
            row.get::<_, Option<String>>(name)?
                .map(|t| parse_ts(&t))
                .transpose()
        };
        Ok(RunRecord {
            id: row.get("id")?,
            dag_id: row.get("dag_id")?,
            dag_version: row.get("dag_version_id")?,
            dag_hash: row.get("content_hash")?,
            logical_date: parse_ts(&row.get::<_, String>("logical_date")?)?,
            timezone: row.get("timezone")?,
            trigger: parse_enum(&row.get::<_, String>("trigger")?)?,
            params: serde_json::from_str(&params)
                .map_err(|e| StoreError::Corrupt(format!("params of a run: {e}")))?,
            state: parse_enum(&row.get::<_, String>("state")?)?,
            reason: row.get("reason")?,
            git: git_commit.map(|commit| GitState {
                commit,
                dirty: git_dirty.unwrap_or(false),
            }),
            host: row.get("host")?,
            owner: match (
                row.get::<_, Option<String>>("owner_host")?,
                row.get::<_, Option<u32>>("owner_pid")?,
            ) {
                (Some(host), Some(pid)) => Some(Owner {
                    host,
                    pid,
                    start_time: row
                        .get::<_, Option<i64>>("owner_start_time")?
                        .map(|t| t as u64),
                    lease: row.get("owner_lease")?,
                    lease_held: row.get("owner_lease_held")?,
                }),
                _ => None,
            },
            owner_token: row.get("owner_token")?,
            stop_request: match row.get::<_, Option<String>>("stop_requested_by")? {
                Some(by) => Some(StopRequest {
                    by,
                    reason: row.get("stop_reason")?,
                    at: opt_ts("stop_requested_at")?.unwrap_or_default(),
                }),
                None => None,
            },
            queued_at: parse_ts(&row.get::<_, String>("queued_at")?)?,
            started_at: opt_ts("started_at")?,
            ended_at: opt_ts("ended_at")?,
        })
    }

    /// Statements are cached: the same handful run for every task, and preparing them each
    /// time costs more than executing them.
    fn apply_one(tx: &Connection, change: &Change) -> Result<()> {
        let changed = match change {
            Change::Run {
                run,
                state,
                reason,
                at,
            } => {
                let at = ts(at);
                tx.prepare_cached("UPDATE runs SET state = ?2,
                        reason = ?3,
                        started_at = CASE WHEN ?2 = 'running' THEN COALESCE(started_at, ?4) ELSE started_at END,
                        ended_at = CASE WHEN ?2 IN ('success', 'failed') THEN ?4 ELSE NULL END
                     WHERE id = ?1")?.execute(params![run, state.as_str(), reason, at])?
            }
            Change::Task {
                run,
                task,
                state,
                reason,
                at,
            } => tx.prepare_cached("UPDATE task_instances SET state = ?3, reason = ?4, updated_at = ?5
                 WHERE run_id = ?1 AND task_id = ?2")?.execute(params![run, task, state.as_str(), reason, ts(at)])?,
            Change::AttemptStarted {
                run,
                task,
                attempt,
                command,
                host,
                log_path,
                at,
            } => {
                let at = ts(at);
                tx.prepare_cached(
                    "INSERT INTO attempts (run_id, task_id, attempt, state, command, host, log_path,
                                           started_at, dag_version_id)
                     VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7,
                             (SELECT dag_version_id FROM runs WHERE id = ?1))",
                )?
                .execute(params![run, task, attempt, command, host, log_path, at])?;
                tx.prepare_cached("UPDATE task_instances SET state = 'running', reason = NULL, updated_at = ?3
                     WHERE run_id = ?1 AND task_id = ?2")?.execute(params![run, task, at])?
            }
            Change::AttemptProcess {
                run,
                task,
                attempt,
                pid,
                pid_start_time,
            } => tx.prepare_cached("UPDATE attempts SET pid = ?4, pid_start_time = ?5
                 WHERE run_id = ?1 AND task_id = ?2 AND attempt = ?3")?.execute(params![run, task, attempt, pid, pid_start_time.map(|t| t as i64)])?,
            Change::TaskCleared { run, task, reason, at } => tx
                .prepare_cached(
                    "UPDATE task_instances SET state = 'queued', reason = ?3, updated_at = ?4,
                        retry_base = (SELECT COUNT(*) FROM attempts WHERE run_id = ?1 AND task_id = ?2)
                     WHERE run_id = ?1 AND task_id = ?2",
                )?
                .execute(params![run, task, reason, ts(at)])?,
            Change::SlaMiss {
                run,
                task,
                deadline,
                at,
            } => {
                tx.prepare_cached(
                    "INSERT INTO sla_misses (run_id, task_id, deadline, detected_at)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                )?
                .execute(params![run, task.as_deref().unwrap_or(""), ts(deadline), ts(at)])?;
                // Recorded once; a second detection is not an error.
                1
            }
            Change::Metric {
                run,
                task,
                attempt,
                name,
                value,
                at,
            } => tx
                .prepare_cached(
                    "INSERT INTO metrics (run_id, task_id, attempt, name, value, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT DO UPDATE SET value = ?5, recorded_at = ?6",
                )?
                .execute(params![run, task, attempt, name, value, ts(at)])?,
            Change::ReleaseSlots { run, task } => {
                tx.prepare_cached(
                    "DELETE FROM slots WHERE run_id = ?1 AND (?2 IS NULL OR task_id = ?2)",
                )?
                .execute(params![run, task])?;
                // Nothing held is not an error.
                1
            }
            Change::RunVersion { run, version } => tx
                .prepare_cached("UPDATE runs SET dag_version_id = ?2 WHERE id = ?1")?
                .execute(params![run, version])?,
            Change::RunParams {
                run,
                params: after,
                by,
                at,
            } => {
                let before: String = tx
                    .prepare_cached("SELECT params FROM runs WHERE id = ?1")?
                    .query_row(params![run], |r| r.get(0))?;
                tx.prepare_cached(
                    "INSERT INTO run_param_changes (run_id, at, changed_by, before, after)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![run, ts(at), by, before, after.to_string()])?;
                tx.prepare_cached("UPDATE runs SET params = ?2 WHERE id = ?1")?
                    .execute(params![run, after.to_string()])?
            }
            Change::RunOwner { run, owner } => tx
                .prepare_cached(
                    "UPDATE runs SET owner_host = ?2, owner_pid = ?3, owner_start_time = ?4,
                        owner_lease = ?5 WHERE id = ?1",
                )?
                .execute(params![
                    run,
                    owner.as_ref().map(|o| &o.host),
                    owner.as_ref().map(|o| o.pid),
                    owner.as_ref().and_then(|o| o.start_time).map(|t| t as i64),
                    owner.as_ref().and_then(|o| o.lease.as_deref())
                ])?,
            Change::AttemptFinished {
                run,
                task,
                attempt,
                success,
                exit_code,
                signal,
                reason,
                at,
            } => tx.prepare_cached("UPDATE attempts SET state = ?4, exit_code = ?5, signal = ?6, reason = ?7, ended_at = ?8
                 WHERE run_id = ?1 AND task_id = ?2 AND attempt = ?3 AND state = 'running'")?.execute(params![
                    run,
                    task,
                    attempt,
                    if *success { "success" } else { "failed" },
                    exit_code,
                    signal,
                    reason,
                    ts(at)
                ])?,
        };
        if changed == 0 {
            return Err(StoreError::NotFound(format!("the target of {change:?}")));
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn record_dag_version(&self, v: &NewDagVersion<'_>) -> Result<DagVersionId> {
        self.conn.execute(
            "INSERT INTO dag_versions (dag_id, content_hash, path, source, first_seen)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (dag_id, content_hash) DO NOTHING",
            params![v.dag_id, v.content_hash, v.path, v.source, ts(&Utc::now())],
        )?;
        Ok(self.conn.query_row(
            "SELECT id FROM dag_versions WHERE dag_id = ?1 AND content_hash = ?2",
            params![v.dag_id, v.content_hash],
            |r| r.get(0),
        )?)
    }

    fn create_run(&self, run: &NewRun<'_>) -> Result<RunId> {
        let tx = self.write_tx()?;
        let at = ts(&run.at);
        let logical_date = ts(&run.logical_date);
        let inserted = tx.execute(
            "INSERT INTO runs (dag_id, dag_version_id, logical_date, trigger, params, state,
                               git_commit, git_dirty, host, queued_at, timezone)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8, ?9, ?10)",
            params![
                run.dag_id,
                run.dag_version,
                logical_date,
                run.trigger.as_str(),
                run.params.to_string(),
                run.git.as_ref().map(|g| &g.commit),
                run.git.as_ref().map(|g| g.dirty),
                run.host,
                at,
                run.timezone,
            ],
        );
        match inserted {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                let existing = tx.query_row(
                    "SELECT id FROM runs WHERE dag_id = ?1 AND logical_date = ?2",
                    params![run.dag_id, logical_date],
                    |r| r.get(0),
                )?;
                return Err(StoreError::RunExists {
                    dag_id: run.dag_id.to_owned(),
                    logical_date,
                    run: existing,
                });
            }
            other => {
                other?;
            }
        }
        let id = RunId(tx.last_insert_rowid());
        {
            let mut insert = tx.prepare(
                "INSERT INTO task_instances (run_id, task_id, position, state, updated_at)
                 VALUES (?1, ?2, ?3, 'queued', ?4)",
            )?;
            for (position, task) in run.tasks.iter().enumerate() {
                insert.execute(params![id, task, position as i64, at])?;
            }
        }
        if let Some(backfill) = run.backfill {
            tx.execute(
                "INSERT INTO backfill_runs (backfill_id, run_id, position)
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(position) + 1, 0) FROM backfill_runs
                                  WHERE backfill_id = ?1))",
                params![backfill, id],
            )?;
        }
        if run.records_tick {
            let recorded = tx.execute(
                "INSERT INTO ticks (dag_id, logical_date, decision, run_id, decided_at)
                 VALUES (?1, ?2, 'run', ?3, ?4) ON CONFLICT DO NOTHING",
                params![run.dag_id, logical_date, id, at],
            )?;
            // Decided already (skipped by another scheduler): its decision stands, and
            // dropping the transaction takes the run back.
            if recorded == 0 {
                return Err(StoreError::TickDecided {
                    dag_id: run.dag_id.to_owned(),
                    logical_date,
                });
            }
        }
        tx.commit()?;
        Ok(id)
    }

    fn claim_run(&self, run: RunId, owner: &Owner, at: DateTime<Utc>) -> Result<Option<Fence>> {
        let token = self
            .conn
            .prepare_cached(
                "UPDATE runs SET owner_host = ?2, owner_pid = ?3, owner_start_time = ?4,
                    owner_lease = ?6, owner_token = owner_token + 1,
                    state = 'running', reason = NULL, started_at = COALESCE(started_at, ?5), ended_at = NULL
                 WHERE id = ?1 AND owner_pid IS NULL AND state IN ('queued', 'running')
                 RETURNING owner_token",
            )?
            .query_row(
                params![
                    run,
                    owner.host,
                    owner.pid,
                    owner.start_time.map(|t| t as i64),
                    ts(&at),
                    owner.lease
                ],
                |row| row.get(0),
            )
            .optional()?;
        Ok(token.map(|token| Fence { run, token }))
    }

    fn request_slots(&self, r: &SlotRequest<'_>, alive: &dyn Fn(&Owner) -> bool) -> Result<bool> {
        let tx = self.write_tx()?;
        {
            let mut holders = tx.prepare_cached(
                "SELECT DISTINCT holder_host, holder_pid, holder_start FROM slots",
            )?;
            let dead: Vec<Owner> = holders
                .query_map([], |row| {
                    Ok(Owner {
                        host: row.get(0)?,
                        pid: row.get(1)?,
                        start_time: row.get::<_, Option<i64>>(2)?.map(|t| t as u64),
                        // Slots of a process on another host are freed when its runs are adopted.
                        lease: None,
                        lease_held: None,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .filter(|o| !alive(o))
                .collect();
            let mut free =
                tx.prepare_cached("DELETE FROM slots WHERE holder_host = ?1 AND holder_pid = ?2")?;
            for owner in dead {
                free.execute(params![owner.host, owner.pid])?;
            }
        }
        let since = ts(&r.at);
        let mut granted = true;
        for (pool, capacity) in r.pools {
            tx.prepare_cached(
                "INSERT INTO slots (pool, run_id, task_id, held, class, priority, since,
                                    holder_host, holder_pid, holder_start)
                 VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (pool, run_id, task_id) DO NOTHING",
            )?
            .execute(params![
                pool,
                r.run,
                r.task,
                r.class,
                r.priority,
                since,
                r.holder.host,
                r.holder.pid,
                r.holder.start_time.map(|t| t as i64)
            ])?;
            // Held slots, plus the waiting tasks ahead of this one in line.
            let taken: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM slots AS other, slots AS me
                     WHERE me.pool = ?1 AND me.run_id = ?2 AND me.task_id = ?3
                       AND other.pool = ?1 AND NOT (other.run_id = ?2 AND other.task_id = ?3)
                       AND (other.held = 1
                            OR other.class > me.class
                            OR (other.class = me.class AND other.priority > me.priority)
                            OR (other.class = me.class AND other.priority = me.priority
                                AND (other.since, other.run_id, other.task_id)
                                    < (me.since, me.run_id, me.task_id)))",
                )?
                .query_row(params![pool, r.run, r.task], |row| row.get(0))?;
            if taken >= *capacity as i64 {
                granted = false;
            }
        }
        if granted {
            tx.prepare_cached("UPDATE slots SET held = 1 WHERE run_id = ?1 AND task_id = ?2")?
                .execute(params![r.run, r.task])?;
        }
        tx.commit()?;
        Ok(granted)
    }

    fn create_backfill(&self, b: &NewBackfill<'_>) -> Result<i64> {
        let at = ts(&b.at);
        self.conn.execute(
            "INSERT INTO backfills (dag_id, from_date, to_date, reverse, rerun_failed, max_active,
                                    state, created_at, updated_at, redeploy_past)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?7, ?8)",
            params![
                b.dag_id,
                ts(&b.from),
                ts(&b.to),
                b.reverse,
                b.rerun_failed,
                b.max_active as i64,
                at,
                b.redeploy_past
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn link_backfill_runs(&self, backfill: i64, runs: &[RunId]) -> Result<()> {
        let tx = self.write_tx()?;
        let start: i64 = tx.query_row(
            "SELECT COALESCE(MAX(position) + 1, 0) FROM backfill_runs WHERE backfill_id = ?1",
            params![backfill],
            |r| r.get(0),
        )?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO backfill_runs (backfill_id, run_id, position) VALUES (?1, ?2, ?3)",
            )?;
            for (i, run) in runs.iter().enumerate() {
                insert.execute(params![backfill, run, start + i as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn set_backfill_state(&self, backfill: i64, state: BackfillState) -> Result<()> {
        let changed = self.conn.execute(
            "UPDATE backfills SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![backfill, state.as_str(), ts(&Utc::now())],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("backfill {backfill}")));
        }
        Ok(())
    }

    fn backfill(&self, id: i64) -> Result<BackfillRecord> {
        self.backfills_where(Some(id), None)?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("backfill {id}")))
    }

    fn backfills(&self, dag_id: Option<&str>) -> Result<Vec<BackfillRecord>> {
        self.backfills_where(None, dag_id)
    }

    fn backfill_of(&self, run: RunId) -> Result<Option<(i64, BackfillState)>> {
        let found: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT backfills.id, backfills.state FROM backfill_runs
                 JOIN backfills ON backfills.id = backfill_runs.backfill_id
                 WHERE run_id = ?1 ORDER BY backfill_id DESC LIMIT 1",
                params![run],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        found
            .map(|(id, state)| Ok((id, parse_enum(&state)?)))
            .transpose()
    }

    fn sla_misses(&self, dag_id: Option<&str>, limit: usize) -> Result<Vec<SlaMiss>> {
        let limit = if limit == 0 { -1 } else { limit as i64 };
        let mut stmt = self.conn.prepare_cached(
            "SELECT sla_misses.*, runs.dag_id, runs.logical_date FROM sla_misses
             JOIN runs ON runs.id = sla_misses.run_id
             WHERE ?1 IS NULL OR runs.dag_id = ?1
             ORDER BY sla_misses.detected_at DESC LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![dag_id, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let task: String = row.get("task_id")?;
            out.push(SlaMiss {
                run: row.get("run_id")?,
                dag_id: row.get("dag_id")?,
                task: (!task.is_empty()).then_some(task),
                logical_date: parse_ts(&row.get::<_, String>("logical_date")?)?,
                deadline: parse_ts(&row.get::<_, String>("deadline")?)?,
                detected_at: parse_ts(&row.get::<_, String>("detected_at")?)?,
            });
        }
        Ok(out)
    }

    fn record_ticks(&self, dag_id: &str, ticks: &[(DateTime<Utc>, TickDecision)]) -> Result<usize> {
        let tx = self.write_tx()?;
        let mut inserted = 0;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO ticks (dag_id, logical_date, decision, reason, run_id, decided_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (dag_id, logical_date) DO NOTHING",
            )?;
            let now = ts(&Utc::now());
            for (logical_date, decision) in ticks {
                let (kind, reason, run) = match decision {
                    TickDecision::Run(run) => ("run", None, Some(*run)),
                    TickDecision::Skipped(reason) => ("skipped", Some(reason.as_str()), None),
                };
                inserted +=
                    insert.execute(params![dag_id, ts(logical_date), kind, reason, run, now])?;
            }
        }
        tx.commit()?;
        Ok(inserted)
    }

    fn last_tick(&self, dag_id: &str) -> Result<Option<DateTime<Utc>>> {
        let text: Option<String> = self.conn.query_row(
            "SELECT MAX(logical_date) FROM ticks WHERE dag_id = ?1",
            params![dag_id],
            |r| r.get(0),
        )?;
        text.map(|t| parse_ts(&t)).transpose()
    }

    fn ticks(&self, dag_id: &str, limit: usize) -> Result<Vec<TickRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT logical_date, decision, reason, run_id, decided_at FROM ticks
             WHERE dag_id = ?1 ORDER BY logical_date DESC LIMIT ?2",
        )?;
        let limit = if limit == 0 { -1 } else { limit as i64 };
        let mut rows = stmt.query(params![dag_id, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let decision = match (
                row.get::<_, String>(1)?.as_str(),
                row.get::<_, Option<RunId>>(3)?,
            ) {
                ("run", Some(run)) => TickDecision::Run(run),
                _ => TickDecision::Skipped(row.get::<_, Option<String>>(2)?.unwrap_or_default()),
            };
            out.push(TickRecord {
                dag_id: dag_id.to_owned(),
                logical_date: parse_ts(&row.get::<_, String>(0)?)?,
                decision,
                decided_at: parse_ts(&row.get::<_, String>(4)?)?,
            });
        }
        Ok(out)
    }

    fn set_paused(&self, dag_id: &str, paused: bool) -> Result<()> {
        self.conn.execute(
            "INSERT INTO dag_state (dag_id, paused, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (dag_id) DO UPDATE SET paused = ?2, updated_at = ?3",
            params![dag_id, paused, ts(&Utc::now())],
        )?;
        Ok(())
    }

    fn pause_switches(&self) -> Result<std::collections::BTreeMap<String, bool>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT dag_id, paused FROM dag_state")?;
        let switches = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(switches)
    }

    fn apply(&self, changes: &[Change]) -> Result<()> {
        self.apply_as(None, changes)
    }

    fn request_stop(&self, run: RunId, request: &StopRequest) -> Result<RunRecord> {
        self.conn
            .prepare_cached(
                "UPDATE runs SET stop_requested_by = ?2, stop_reason = ?3, stop_requested_at = ?4
                 WHERE id = ?1 AND state IN ('queued', 'running')",
            )?
            .execute(params![run, request.by, request.reason, ts(&request.at)])?;
        Ok(self.run(run)?.run)
    }

    fn param_changes(&self, run: RunId) -> Result<Vec<ParamChange>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, changed_by, before, after FROM run_param_changes
             WHERE run_id = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query(params![run])?;
        let mut out = Vec::new();
        let json = |text: String| {
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("params of run {run}: {e}")))
        };
        while let Some(row) = rows.next()? {
            out.push(ParamChange {
                at: parse_ts(&row.get::<_, String>(0)?)?,
                by: row.get(1)?,
                before: json(row.get(2)?)?,
                after: json(row.get(3)?)?,
            });
        }
        Ok(out)
    }

    fn request_task_stop(&self, run: RunId, task: &str, request: &StopRequest) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO task_stops (run_id, task_id, stopped_by, reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                run,
                task,
                request.by,
                request.reason,
                ts(&request.at)
            ])?;
        Ok(())
    }

    fn task_stop(&self, run: RunId, task: &str) -> Result<Option<StopRequest>> {
        let row: Option<(String, Option<String>, String)> = self
            .conn
            .prepare_cached(
                "SELECT stopped_by, reason, at FROM task_stops WHERE run_id = ?1 AND task_id = ?2",
            )?
            .query_row(params![run, task], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        row.map(|(by, reason, at)| {
            Ok(StopRequest {
                by,
                reason,
                at: parse_ts(&at)?,
            })
        })
        .transpose()
    }

    fn stop_requests(&self, lease: &str) -> Result<Vec<(RunId, Option<String>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, NULL FROM runs WHERE owner_lease = ?1 AND state = 'running'
               AND stop_requested_at IS NOT NULL
             UNION ALL
             SELECT s.run_id, s.task_id FROM task_stops s
               JOIN runs ON runs.id = s.run_id
               JOIN task_instances t ON t.run_id = s.run_id AND t.task_id = s.task_id
             WHERE runs.owner_lease = ?1 AND runs.state = 'running' AND t.state = 'running'
             ORDER BY 1",
        )?;
        let asked = stmt
            .query_map(params![lease], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(asked)
    }

    fn runs(&self, filter: &RunFilter<'_>) -> Result<Vec<RunRecord>> {
        let limit = if filter.limit == 0 {
            -1
        } else {
            filter.limit as i64
        };
        // One placeholder per state keeps `state IN (...)` on the index, so finding the few
        // queued or running runs does not scan the history.
        let state_clause = if filter.states.is_empty() {
            String::new()
        } else {
            let marks: Vec<String> = (3..3 + filter.states.len())
                .map(|i| format!("?{i}"))
                .collect();
            let marks = marks.join(", ");
            format!("AND runs.state IN ({marks})")
        };
        // Each filter is in the statement only when it is used, so SQLite can pick the index
        // for it (`x IS NULL OR col = x` would scan the whole history).
        let dag_clause = if filter.dag_id.is_some() {
            "AND runs.dag_id = ?1"
        } else {
            "AND ?1 IS NULL"
        };
        let sql = format!(
            "SELECT runs.*, dag_versions.content_hash, {held} AS owner_lease_held FROM runs
             JOIN dag_versions ON dag_versions.id = runs.dag_version_id
             WHERE 1 {dag_clause} {state_clause}
             ORDER BY runs.id {} LIMIT ?2",
            if filter.oldest_first { "ASC" } else { "DESC" },
            held = lease::OWNER_LEASE_HELD,
        );
        let values: Vec<Box<dyn rusqlite::ToSql>> =
            vec![Box::new(filter.dag_id.map(str::to_owned)), Box::new(limit)];
        self.query_runs(&sql, values, filter.states)
    }

    fn runs_before(
        &self,
        dag_id: &str,
        before: DateTime<Utc>,
        states: &[RunState],
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let marks: Vec<String> = (4..4 + states.len()).map(|i| format!("?{i}")).collect();
        let state_clause = if states.is_empty() {
            String::new()
        } else {
            format!("AND runs.state IN ({})", marks.join(", "))
        };
        let sql = format!(
            "SELECT runs.*, dag_versions.content_hash, {held} AS owner_lease_held FROM runs
             JOIN dag_versions ON dag_versions.id = runs.dag_version_id
             WHERE runs.dag_id = ?1 AND runs.logical_date < ?2 {state_clause}
             ORDER BY runs.logical_date DESC, runs.id DESC LIMIT ?3",
            held = lease::OWNER_LEASE_HELD,
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let values: Vec<Box<dyn rusqlite::ToSql>> = vec![
            Box::new(dag_id.to_owned()),
            Box::new(ts(&before)),
            Box::new(limit),
        ];
        self.query_runs(&sql, values, states)
    }

    fn run(&self, id: RunId) -> Result<RunDetail> {
        let run = {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT runs.*, dag_versions.content_hash, {} AS owner_lease_held FROM runs
                 JOIN dag_versions ON dag_versions.id = runs.dag_version_id
                 WHERE runs.id = ?1",
                lease::OWNER_LEASE_HELD
            ))?;
            let mut rows = stmt.query(params![id])?;
            match rows.next()? {
                Some(row) => Self::run_record(row)?,
                None => return Err(StoreError::NotFound(format!("run {id}"))),
            }
        };
        let mut tasks: Vec<TaskRecord> = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT task_id, state, reason, retry_base FROM task_instances WHERE run_id = ?1 ORDER BY position",
            )?;
            let mut rows = stmt.query(params![id])?;
            while let Some(row) = rows.next()? {
                tasks.push(TaskRecord {
                    task_id: row.get(0)?,
                    state: parse_enum(&row.get::<_, String>(1)?)?,
                    reason: row.get(2)?,
                    retry_base: row.get(3)?,
                    attempts: Vec::new(),
                });
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM attempts WHERE run_id = ?1 ORDER BY task_id, attempt")?;
        let mut rows = stmt.query(params![id])?;
        while let Some(row) = rows.next()? {
            let task_id: String = row.get("task_id")?;
            let ended: Option<String> = row.get("ended_at")?;
            let attempt = AttemptRecord {
                attempt: row.get("attempt")?,
                state: parse_enum(&row.get::<_, String>("state")?)?,
                command: row.get("command")?,
                host: row.get("host")?,
                log_path: row.get("log_path")?,
                dag_version: row.get("dag_version_id")?,
                metrics: Vec::new(),
                pid: row.get("pid")?,
                pid_start_time: row
                    .get::<_, Option<i64>>("pid_start_time")?
                    .map(|t| t as u64),
                exit_code: row.get("exit_code")?,
                signal: row.get("signal")?,
                reason: row.get("reason")?,
                started_at: parse_ts(&row.get::<_, String>("started_at")?)?,
                ended_at: ended.map(|t| parse_ts(&t)).transpose()?,
            };
            attach_attempt(&mut tasks, &task_id, attempt);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT task_id, attempt, name, value FROM metrics WHERE run_id = ?1 ORDER BY name",
        )?;
        let mut rows = stmt.query(params![id])?;
        while let Some(row) = rows.next()? {
            let task_id: String = row.get(0)?;
            attach_metric(
                &mut tasks,
                &task_id,
                row.get(1)?,
                (row.get(2)?, row.get(3)?),
            );
        }
        Ok(RunDetail { run, tasks })
    }

    fn dag_source(&self, version: DagVersionId) -> Result<String> {
        self.conn
            .query_row(
                "SELECT source FROM dag_versions WHERE id = ?1",
                params![version],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("DAG version {version}")))
    }
}
