//! Schema migrations: the same version numbers as SQLite's, in PostgreSQL's types.

use ::postgres::Client;

use crate::{Result, StoreError};

/// Schema migrations, applied in order; `vane_schema.version` holds how many ran. Each has the
/// number of the SQLite migration that makes the same change.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_scheduler.sql"),
    include_str!("../../migrations/postgres/0003_clear.sql"),
    include_str!("../../migrations/postgres/0004_backfill.sql"),
    include_str!("../../migrations/postgres/0005_sla.sql"),
    include_str!("../../migrations/postgres/0006_metrics.sql"),
    include_str!("../../migrations/postgres/0007_slots.sql"),
    include_str!("../../migrations/postgres/0008_artifacts.sql"),
    include_str!("../../migrations/postgres/0009_checks.sql"),
    include_str!("../../migrations/postgres/0010_registry.sql"),
    include_str!("../../migrations/postgres/0011_cache.sql"),
    include_str!("../../migrations/postgres/0012_rollout_lock.sql"),
    include_str!("../../migrations/postgres/0013_alerts.sql"),
    include_str!("../../migrations/postgres/0014_scheduler_heartbeat.sql"),
    include_str!("../../migrations/postgres/0015_leases.sql"),
    include_str!("../../migrations/postgres/0016_alert_horizon.sql"),
    include_str!("../../migrations/postgres/0017_stop_requests.sql"),
    include_str!("../../migrations/postgres/0018_alert_delivery.sql"),
    include_str!("../../migrations/postgres/0019_backfill_redeploy.sql"),
    include_str!("../../migrations/postgres/0020_param_changes.sql"),
    include_str!("../../migrations/postgres/0021_task_stops.sql"),
    include_str!("../../migrations/postgres/0022_agents.sql"),
    include_str!("../../migrations/postgres/0023_log_chunks.sql"),
    include_str!("../../migrations/postgres/0024_run_timezone.sql"),
    include_str!("../../migrations/postgres/0025_runs_by_logical_date.sql"),
    include_str!("../../migrations/postgres/0026_apply_in_one_trip.sql"),
    include_str!("../../migrations/postgres/0027_backfill_positions.sql"),
];

/// The advisory lock key that serialises migrating: every scheduler starting on a new
/// database would otherwise create the same tables at once. ASCII "vanemigr".
const MIGRATION_LOCK: i64 = 0x7661_6e65_6d69_6772;

/// The schema version, 0 for a database vane never touched.
pub(super) fn version(client: &mut Client) -> Result<i64> {
    let exists: bool = client
        .query_one("SELECT to_regclass('vane_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client.query_opt("SELECT version FROM vane_schema", &[])?;
    Ok(row.map_or(0, |r| r.get(0)))
}

impl super::PgStore {
    /// Brings the schema up to date under an advisory lock held until the transaction ends, so
    /// that of several processes starting at once one migrates and the others find it done.
    pub(super) fn migrate(&self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        // Most starts find the schema current and need no lock.
        let current = self.with_client(version)?;
        if current == known {
            return Ok(());
        }
        self.tx(|c| {
            c.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            // Looked for first rather than `CREATE TABLE IF NOT EXISTS`: a process that waited
            // for the lock while another migrated would get the server's notice that it exists,
            // logged at every start of a scheduler (whose connections open at once).
            let exists: bool = c
                .query_one("SELECT to_regclass('vane_schema') IS NOT NULL", &[])?
                .get(0);
            if !exists {
                c.batch_execute("CREATE TABLE vane_schema (version bigint NOT NULL)")?;
            }
            let version = version(c)?;
            if version > known {
                return Err(StoreError::TooNew {
                    found: version,
                    known,
                });
            }
            for sql in &MIGRATIONS[version as usize..] {
                c.batch_execute(sql)?;
            }
            c.execute("DELETE FROM vane_schema", &[])?;
            c.execute("INSERT INTO vane_schema (version) VALUES ($1)", &[&known])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// The version numbers of the migration files in `dir` of this crate, in order.
    fn numbers(dir: &str) -> Vec<String> {
        let dir = format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| n.split('_').next().unwrap().to_string())
            .collect()
    }

    /// A database's version means the same schema on both backends, so a change made to one
    /// must be made to the other under the same number.
    #[test]
    fn both_backends_migrate_through_the_same_versions() {
        let sqlite = numbers("migrations");
        assert_eq!(numbers("migrations/postgres"), sqlite);
        assert_eq!(MIGRATIONS.len(), sqlite.len());
        let sqlite_version = crate::SqliteStore::open_in_memory()
            .unwrap()
            .schema_version()
            .unwrap();
        assert_eq!(MIGRATIONS.len() as i64, sqlite_version);
    }
}
