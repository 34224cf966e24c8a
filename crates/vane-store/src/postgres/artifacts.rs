//! Artifact versions, lineage and cache keys on PostgreSQL.

use chrono::{DateTime, Utc};
use postgres::Row;

use super::PgStore;
use super::locks::{Scope, lock_all};
use super::values::{attempt_number, parse_enum, unsigned};
use crate::artifacts::{
    ArtifactLink, ArtifactStore, ArtifactVersion, AttemptRef, Direction, NewArtifact,
};
use crate::types::RunId;
use crate::{Result, StoreError};

/// The columns [`version`] reads, from `artifact_versions` aliased `v`.
const VERSION_COLUMNS: &str = "v.id, v.name, v.version, v.hash, v.kind, v.size, v.path, v.stored,
     v.created_at, v.run_id, v.task_id, v.attempt";

/// A version from a row whose first twelve columns are [`VERSION_COLUMNS`].
fn version(row: &Row) -> Result<ArtifactVersion> {
    let run: Option<RunId> = row.try_get(9)?;
    let producer = match run {
        Some(run) => Some(AttemptRef {
            run,
            task: row.try_get(10)?,
            attempt: attempt_number(row.try_get(11)?)?,
        }),
        None => None,
    };
    Ok(ArtifactVersion {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        version: super::to_u32(row.try_get(2)?, "artifact version number")?,
        hash: row.try_get(3)?,
        kind: parse_enum(row.try_get(4)?)?,
        size: unsigned(row.try_get(5)?)?,
        path: row.try_get(6)?,
        stored: row.try_get(7)?,
        created_at: row.try_get(8)?,
        producer,
    })
}

/// A link from a row of [`VERSION_COLUMNS`] followed by the link's run, task, attempt,
/// direction and path.
fn link(row: &Row) -> Result<ArtifactLink> {
    Ok(ArtifactLink {
        artifact: version(row)?,
        attempt: AttemptRef {
            run: row.try_get(12)?,
            task: row.try_get(13)?,
            attempt: attempt_number(row.try_get(14)?)?,
        },
        direction: parse_enum(row.try_get(15)?)?,
        path: row.try_get(16)?,
    })
}

impl PgStore {
    fn attempt_links_in(
        c: &mut postgres::Client,
        run: RunId,
        task: Option<&str>,
    ) -> Result<Vec<ArtifactLink>> {
        c.query(
            &format!(
                "SELECT {VERSION_COLUMNS}, l.run_id, l.task_id, l.attempt, l.direction, l.path
                 FROM attempt_artifacts l JOIN artifact_versions v ON v.id = l.artifact_id
                 WHERE l.run_id = $1 AND ($2::text IS NULL OR l.task_id = $2)
                 ORDER BY l.task_id COLLATE \"C\", l.attempt, l.direction COLLATE \"C\",
                          v.name COLLATE \"C\""
            ),
            &[&run, &task],
        )?
        .iter()
        .map(link)
        .collect()
    }
}

impl ArtifactStore for PgStore {
    fn record_artifacts(
        &self,
        attempt: &AttemptRef,
        direction: Direction,
        artifacts: &[NewArtifact<'_>],
        at: DateTime<Utc>,
    ) -> Result<Vec<ArtifactVersion>> {
        let output = direction == Direction::Output;
        let number = i64::from(attempt.attempt);
        self.tx(|c| {
            // The next version number of a name is read and taken under that name's lock, so
            // two schedulers recording new content of one name at once cannot both take it.
            let names: Vec<&str> = artifacts.iter().map(|a| a.name).collect();
            lock_all(c, Scope::Artifact, &names)?;
            // Prepared once: a run's outputs can be many files.
            let insert = c.prepare(
                "INSERT INTO artifact_versions
                     (name, version, hash, kind, size, path, stored, created_at, run_id, task_id, attempt)
                 VALUES ($1, (SELECT COALESCE(MAX(version), 0) + 1 FROM artifact_versions WHERE name = $1),
                         $2, $3, $4, $5, $6, $7,
                         CASE WHEN $8 THEN $9::bigint END, CASE WHEN $8 THEN $10::text END,
                         CASE WHEN $8 THEN $11::bigint END)
                 ON CONFLICT (name, hash) DO NOTHING",
            )?;
            // Content first seen as an input (a file a person dropped in) and later written by
            // a task gets that task as its producer; a copy kept later fills a missing one.
            let adopt = c.prepare(
                "UPDATE artifact_versions SET
                     run_id = CASE WHEN run_id IS NULL AND $3 THEN $4 ELSE run_id END,
                     task_id = CASE WHEN run_id IS NULL AND $3 THEN $5 ELSE task_id END,
                     attempt = CASE WHEN run_id IS NULL AND $3 THEN $6 ELSE attempt END,
                     stored = COALESCE(stored, $7)
                 WHERE name = $1 AND hash = $2
                 RETURNING id",
            )?;
            let record_use = c.prepare(
                "INSERT INTO attempt_artifacts (run_id, task_id, attempt, direction, artifact_id, path)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (run_id, task_id, attempt, direction, artifact_id)
                 DO UPDATE SET path = excluded.path",
            )?;
            let mut ids = Vec::with_capacity(artifacts.len());
            for a in artifacts {
                c.execute(
                    &insert,
                    &[
                        &a.name,
                        &a.hash,
                        &a.kind.as_str(),
                        &(a.size as i64),
                        &a.path,
                        &a.stored,
                        &at,
                        &output,
                        &attempt.run,
                        &attempt.task,
                        &number,
                    ],
                )?;
                let id: i64 = c
                    .query_one(
                        &adopt,
                        &[
                            &a.name,
                            &a.hash,
                            &output,
                            &attempt.run,
                            &attempt.task,
                            &number,
                            &a.stored,
                        ],
                    )?
                    .get(0);
                c.execute(
                    &record_use,
                    &[
                        &attempt.run,
                        &attempt.task,
                        &number,
                        &direction.as_str(),
                        &id,
                        &a.path,
                    ],
                )?;
                ids.push(id);
            }
            let rows = c.query(
                &format!("SELECT {VERSION_COLUMNS} FROM artifact_versions v WHERE v.id = ANY($1)"),
                &[&ids],
            )?;
            let found = rows
                .iter()
                .map(|row| Ok((row.try_get::<_, i64>(0)?, version(row)?)))
                .collect::<Result<std::collections::HashMap<_, _>>>()?;
            // In the order given; the same content given twice appears twice.
            ids.iter()
                .map(|id| {
                    found
                        .get(id)
                        .cloned()
                        .ok_or_else(|| StoreError::NotFound(format!("artifact version {id}")))
                })
                .collect()
        })
    }

    fn artifact_versions(&self, name: Option<&str>) -> Result<Vec<ArtifactVersion>> {
        self.with_client(|c| {
            c.query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM artifact_versions v
                     WHERE $1::text IS NULL OR v.name = $1
                     ORDER BY v.name COLLATE \"C\", v.version"
                ),
                &[&name],
            )?
            .iter()
            .map(version)
            .collect()
        })
    }

    fn artifact_version(&self, name: &str, number: Option<u32>) -> Result<ArtifactVersion> {
        let wanted = number.map(i64::from);
        let row = self.with_client(|c| {
            Ok(c.query_opt(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM artifact_versions v
                     WHERE v.name = $1 AND ($2::bigint IS NULL OR v.version = $2)
                     ORDER BY v.version DESC LIMIT 1"
                ),
                &[&name, &wanted],
            )?)
        })?;
        match row {
            Some(row) => version(&row),
            None => Err(StoreError::NotFound(match number {
                Some(n) => format!("version {n} of artifact `{name}`"),
                None => format!("artifact `{name}`"),
            })),
        }
    }

    fn artifact_links(&self, artifact_id: i64) -> Result<Vec<ArtifactLink>> {
        self.with_client(|c| {
            c.query(
                &format!(
                    "SELECT {VERSION_COLUMNS}, l.run_id, l.task_id, l.attempt, l.direction, l.path
                     FROM attempt_artifacts l JOIN artifact_versions v ON v.id = l.artifact_id
                     WHERE l.artifact_id = $1
                     ORDER BY l.run_id, l.task_id COLLATE \"C\", l.attempt,
                              l.direction COLLATE \"C\""
                ),
                &[&artifact_id],
            )?
            .iter()
            .map(link)
            .collect()
        })
    }

    fn attempt_links(&self, run: RunId, task: Option<&str>) -> Result<Vec<ArtifactLink>> {
        self.with_client(|c| Self::attempt_links_in(c, run, task))
    }

    fn record_cache_key(&self, attempt: &AttemptRef, dag_id: &str, key: &str) -> Result<()> {
        self.tx(|c| {
            c.execute(
                "INSERT INTO cache_keys (run_id, task_id, attempt, dag_id, key)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (run_id, task_id, attempt)
                 DO UPDATE SET dag_id = excluded.dag_id, key = excluded.key",
                &[
                    &attempt.run,
                    &attempt.task,
                    &i64::from(attempt.attempt),
                    &dag_id,
                    &key,
                ],
            )?;
            Ok(())
        })
    }

    fn cache_hit(
        &self,
        dag_id: &str,
        task: &str,
        key: &str,
    ) -> Result<Option<(AttemptRef, Vec<ArtifactLink>)>> {
        self.with_client(|c| {
            let found = c.query_opt(
                "SELECT k.run_id, k.attempt FROM cache_keys k
                 JOIN attempts a ON a.run_id = k.run_id AND a.task_id = k.task_id AND a.attempt = k.attempt
                 WHERE k.dag_id = $1 AND k.task_id = $2 AND k.key = $3 AND a.state = 'success'
                 ORDER BY k.run_id DESC, k.attempt DESC LIMIT 1",
                &[&dag_id, &task, &key],
            )?;
            let Some(row) = found else {
                return Ok(None);
            };
            let attempt = AttemptRef {
                run: row.try_get(0)?,
                task: task.to_owned(),
                attempt: attempt_number(row.try_get(1)?)?,
            };
            let outputs = Self::attempt_links_in(c, attempt.run, Some(task))?
                .into_iter()
                .filter(|l| {
                    l.attempt.attempt == attempt.attempt && l.direction == Direction::Output
                })
                .collect();
            Ok(Some((attempt, outputs)))
        })
    }
}
