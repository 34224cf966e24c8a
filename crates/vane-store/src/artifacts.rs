//! Artifact versions and lineage: what every attempt read and wrote.
//!
//! A version is content-addressed: the same name with the same content hash is the same
//! version, whichever run saw it. Attempts link to versions as `input` or `output`, and through
//! that link lineage reaches the run, its DAG version and its params.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::Result;
use crate::types::RunId;

/// Whether an artifact is one file or a folder of files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    File,
    Dir,
}

/// Whether an attempt read (`Input`) or wrote (`Output`) a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Input,
    Output,
}

macro_rules! text {
    ($name:ident { $($variant:ident => $text:literal),+ }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{other}`", stringify!($name))),
                }
            }
        }
    };
}

text!(ArtifactKind { File => "file", Dir => "dir" });
text!(Direction { Input => "input", Output => "output" });

/// One attempt of one task of one run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptRef {
    pub run: RunId,
    pub task: String,
    pub attempt: u32,
}

/// Content an attempt read or wrote, as hashed by the engine.
#[derive(Debug, Clone)]
pub struct NewArtifact<'a> {
    pub name: &'a str,
    /// Hex SHA-256 of the content.
    pub hash: &'a str,
    pub kind: ArtifactKind,
    /// Bytes (of a folder: of all its files).
    pub size: u64,
    /// Where the attempt read or wrote it.
    pub path: &'a str,
    /// Its copy in the content store, if one was kept.
    pub stored: Option<&'a str>,
}

/// A recorded version of a named artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactVersion {
    pub id: i64,
    pub name: String,
    /// 1, 2, ... per name, in the order versions were first seen.
    pub version: u32,
    pub hash: String,
    pub kind: ArtifactKind,
    pub size: u64,
    /// Where the content was when first seen.
    pub path: String,
    pub stored: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The attempt that first wrote it; `None` for content only ever read (a raw file).
    pub producer: Option<AttemptRef>,
}

/// An attempt's use of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactLink {
    pub attempt: AttemptRef,
    pub direction: Direction,
    /// Where that attempt read or wrote it.
    pub path: String,
    pub artifact: ArtifactVersion,
}

/// Records and reads artifact versions, their links to attempts, and cache keys.
pub trait ArtifactStore {
    /// Records what an attempt read or wrote: each artifact becomes a version (or is found
    /// recorded with the same name and hash) and is linked to the attempt. An output whose
    /// version had no producer gets this attempt as its producer. Recording the same thing
    /// twice changes nothing. Returns the versions in the order given.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn record_artifacts(
        &self,
        attempt: &AttemptRef,
        direction: Direction,
        artifacts: &[NewArtifact<'_>],
        at: DateTime<Utc>,
    ) -> Result<Vec<ArtifactVersion>>;

    /// Every version, by name then version; with `name`, only that artifact's.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn artifact_versions(&self, name: Option<&str>) -> Result<Vec<ArtifactVersion>>;

    /// One version of an artifact; `None` means its latest.
    ///
    /// # Errors
    /// [`crate::StoreError::NotFound`] when there is no such artifact or version.
    fn artifact_version(&self, name: &str, version: Option<u32>) -> Result<ArtifactVersion>;

    /// Every attempt that read or wrote version `artifact_id`, oldest first.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn artifact_links(&self, artifact_id: i64) -> Result<Vec<ArtifactLink>>;

    /// What the attempts of a run (or of one of its tasks) read and wrote, by task, attempt,
    /// direction and name.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn attempt_links(&self, run: RunId, task: Option<&str>) -> Result<Vec<ArtifactLink>>;

    /// Records the cache key an attempt of DAG `dag_id` ran with.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn record_cache_key(&self, attempt: &AttemptRef, dag_id: &str, key: &str) -> Result<()>;

    /// The latest successful attempt of task `task` of DAG `dag_id` that ran with cache key
    /// `key`, with the versions it wrote.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn cache_hit(
        &self,
        dag_id: &str,
        task: &str,
        key: &str,
    ) -> Result<Option<(AttemptRef, Vec<ArtifactLink>)>>;
}
