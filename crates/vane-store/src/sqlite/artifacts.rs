use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, parse_enum, parse_ts, ts};
use crate::artifacts::{
    ArtifactLink, ArtifactStore, ArtifactVersion, AttemptRef, Direction, NewArtifact,
};
use crate::types::RunId;
use crate::{Result, StoreError};

/// The columns [`version`] reads, from `artifact_versions` aliased `v`.
const VERSION_COLUMNS: &str = "v.id, v.name, v.version, v.hash, v.kind, v.size, v.path, v.stored,
     v.created_at, v.run_id, v.task_id, v.attempt";

/// A version from a row whose first twelve columns are [`VERSION_COLUMNS`].
fn version(row: &Row<'_>) -> Result<ArtifactVersion> {
    let run: Option<RunId> = row.get(9)?;
    let producer = match run {
        Some(run) => Some(AttemptRef {
            run,
            task: row.get(10)?,
            attempt: row.get(11)?,
        }),
        None => None,
    };
    Ok(ArtifactVersion {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        hash: row.get(3)?,
        kind: parse_enum(&row.get::<_, String>(4)?)?,
        size: row.get::<_, i64>(5)? as u64,
        path: row.get(6)?,
        stored: row.get(7)?,
        created_at: parse_ts(&row.get::<_, String>(8)?)?,
        producer,
    })
}

/// A link from a row of [`VERSION_COLUMNS`] followed by the link's run, task, attempt,
/// direction and path.
fn link(row: &Row<'_>) -> Result<ArtifactLink> {
    Ok(ArtifactLink {
        artifact: version(row)?,
        attempt: AttemptRef {
            run: row.get(12)?,
            task: row.get(13)?,
            attempt: row.get(14)?,
        },
        direction: parse_enum(&row.get::<_, String>(15)?)?,
        path: row.get(16)?,
    })
}

fn collect<T>(
    mut rows: rusqlite::Rows<'_>,
    read: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

impl ArtifactStore for SqliteStore {
    fn record_artifacts(
        &self,
        attempt: &AttemptRef,
        direction: Direction,
        artifacts: &[NewArtifact<'_>],
        at: DateTime<Utc>,
    ) -> Result<Vec<ArtifactVersion>> {
        let tx = self.write_tx()?;
        let at = ts(&at);
        let output = direction == Direction::Output;
        let mut ids = Vec::with_capacity(artifacts.len());
        for a in artifacts {
            // The next version number is taken under the write lock, so two processes
            // recording new content of one name at once cannot both take it.
            tx.prepare_cached(
                "INSERT INTO artifact_versions
                     (name, version, hash, kind, size, path, stored, created_at, run_id, task_id, attempt)
                 VALUES (?1, (SELECT COALESCE(MAX(version), 0) + 1 FROM artifact_versions WHERE name = ?1),
                         ?2, ?3, ?4, ?5, ?6, ?7,
                         CASE WHEN ?8 THEN ?9 END, CASE WHEN ?8 THEN ?10 END, CASE WHEN ?8 THEN ?11 END)
                 ON CONFLICT (name, hash) DO NOTHING",
            )?
            .execute(params![
                a.name,
                a.hash,
                a.kind.as_str(),
                a.size as i64,
                a.path,
                a.stored,
                at,
                output,
                attempt.run,
                attempt.task,
                attempt.attempt
            ])?;
            let id: i64 = tx
                .prepare_cached("SELECT id FROM artifact_versions WHERE name = ?1 AND hash = ?2")?
                .query_row(params![a.name, a.hash], |r| r.get(0))?;
            // Content first seen as an input (a file a person dropped in) and later written by
            // a task gets that task as its producer; a copy kept later fills a missing one.
            tx.prepare_cached(
                "UPDATE artifact_versions SET
                     run_id = CASE WHEN run_id IS NULL AND ?2 THEN ?3 ELSE run_id END,
                     task_id = CASE WHEN run_id IS NULL AND ?2 THEN ?4 ELSE task_id END,
                     attempt = CASE WHEN run_id IS NULL AND ?2 THEN ?5 ELSE attempt END,
                     stored = COALESCE(stored, ?6)
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                output,
                attempt.run,
                attempt.task,
                attempt.attempt,
                a.stored
            ])?;
            tx.prepare_cached(
                "INSERT INTO attempt_artifacts (run_id, task_id, attempt, direction, artifact_id, path)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO UPDATE SET path = ?6",
            )?
            .execute(params![
                attempt.run,
                attempt.task,
                attempt.attempt,
                direction.as_str(),
                id,
                a.path
            ])?;
            ids.push(id);
        }
        let mut versions = Vec::with_capacity(ids.len());
        {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM artifact_versions v WHERE v.id = ?1"
            ))?;
            for id in ids {
                let mut rows = stmt.query(params![id])?;
                let row = rows
                    .next()?
                    .ok_or_else(|| StoreError::NotFound(format!("artifact version {id}")))?;
                versions.push(version(row)?);
            }
        }
        tx.commit()?;
        Ok(versions)
    }

    fn artifact_versions(&self, name: Option<&str>) -> Result<Vec<ArtifactVersion>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM artifact_versions v
             WHERE ?1 IS NULL OR v.name = ?1 ORDER BY v.name, v.version"
        ))?;
        collect(stmt.query(params![name])?, version)
    }

    fn artifact_version(&self, name: &str, number: Option<u32>) -> Result<ArtifactVersion> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM artifact_versions v
             WHERE v.name = ?1 AND (?2 IS NULL OR v.version = ?2)
             ORDER BY v.version DESC LIMIT 1"
        ))?;
        let mut rows = stmt.query(params![name, number])?;
        match rows.next()? {
            Some(row) => version(row),
            None => Err(StoreError::NotFound(match number {
                Some(n) => format!("version {n} of artifact `{name}`"),
                None => format!("artifact `{name}`"),
            })),
        }
    }

    fn artifact_links(&self, artifact_id: i64) -> Result<Vec<ArtifactLink>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS}, l.run_id, l.task_id, l.attempt, l.direction, l.path
             FROM attempt_artifacts l JOIN artifact_versions v ON v.id = l.artifact_id
             WHERE l.artifact_id = ?1
             ORDER BY l.run_id, l.task_id, l.attempt, l.direction"
        ))?;
        collect(stmt.query(params![artifact_id])?, link)
    }

    fn attempt_links(&self, run: RunId, task: Option<&str>) -> Result<Vec<ArtifactLink>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS}, l.run_id, l.task_id, l.attempt, l.direction, l.path
             FROM attempt_artifacts l JOIN artifact_versions v ON v.id = l.artifact_id
             WHERE l.run_id = ?1 AND (?2 IS NULL OR l.task_id = ?2)
             ORDER BY l.task_id, l.attempt, l.direction, v.name"
        ))?;
        collect(stmt.query(params![run, task])?, link)
    }

    fn record_cache_key(&self, attempt: &AttemptRef, dag_id: &str, key: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO cache_keys (run_id, task_id, attempt, dag_id, key)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO UPDATE SET dag_id = ?4, key = ?5",
            )?
            .execute(params![
                attempt.run,
                attempt.task,
                attempt.attempt,
                dag_id,
                key
            ])?;
        Ok(())
    }

    fn cache_hit(
        &self,
        dag_id: &str,
        task: &str,
        key: &str,
    ) -> Result<Option<(AttemptRef, Vec<ArtifactLink>)>> {
        let found = self
            .conn
            .prepare_cached(
                "SELECT k.run_id, k.attempt FROM cache_keys k
                 JOIN attempts a ON a.run_id = k.run_id AND a.task_id = k.task_id AND a.attempt = k.attempt
                 WHERE k.dag_id = ?1 AND k.task_id = ?2 AND k.key = ?3 AND a.state = 'success'
                 ORDER BY k.run_id DESC, k.attempt DESC LIMIT 1",
            )?
            .query_row(params![dag_id, task, key], |r| {
                Ok(AttemptRef {
                    run: r.get(0)?,
                    task: task.to_owned(),
                    attempt: r.get(1)?,
                })
            })
            .optional()?;
        let Some(attempt) = found else {
            return Ok(None);
        };
        let outputs = self
            .attempt_links(attempt.run, Some(task))?
            .into_iter()
            .filter(|l| l.attempt.attempt == attempt.attempt && l.direction == Direction::Output)
            .collect();
        Ok(Some((attempt, outputs)))
    }
}
