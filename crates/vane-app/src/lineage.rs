//! Artifacts and their lineage: what a version was built from and what used it.

use std::collections::{HashMap, HashSet};

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use vane_store::{
    ArtifactLink, ArtifactVersion, AttemptRef, Direction, RunDetail, RunId, Store, StoreError,
};

use crate::AppError;

type Result<T, E = AppError> = std::result::Result<T, E>;

/// Every artifact version, or those of one artifact.
///
/// # Errors
/// [`AppError::NotFound`] when no artifact has that name.
pub fn versions(store: &dyn Store, name: Option<&str>) -> Result<Vec<ArtifactVersion>> {
    let versions = store.artifact_versions(name)?;
    if let (Some(name), true) = (name, versions.is_empty()) {
        return Err(AppError::NotFound(format!(
            "no artifact is named `{name}`; `vane artifacts` lists them (artifacts are recorded from the `inputs` and `outputs` of tasks)"
        )));
    }
    Ok(versions)
}

/// An artifact version as `vane artifacts --json` and `GET /api/artifacts` give it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Artifact")]
pub struct ArtifactView {
    pub name: String,
    pub version: u32,
    /// SHA-256 of its content.
    pub hash: String,
    /// `file` or `dir`.
    pub kind: &'static str,
    /// Bytes.
    pub size: u64,
    /// Where the task wrote it.
    pub path: String,
    /// Where the content store keeps a copy.
    pub stored: Option<String>,
    pub created_at: String,
    /// The attempt that wrote it.
    pub producer: Option<ProducerView>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Producer")]
pub struct ProducerView {
    pub run: i64,
    pub task: String,
    pub attempt: u32,
}

impl ArtifactView {
    #[must_use]
    pub fn of(v: &ArtifactVersion) -> Self {
        Self {
            name: v.name.clone(),
            version: v.version,
            hash: v.hash.clone(),
            kind: v.kind.as_str(),
            size: v.size,
            path: v.path.clone(),
            stored: v.stored.clone(),
            created_at: v.created_at.to_rfc3339(),
            producer: v.producer.as_ref().map(|p| ProducerView {
                run: p.run.0,
                task: p.task.clone(),
                attempt: p.attempt,
            }),
        }
    }
}

/// An attempt in a lineage, with its run's DAG version, params and logical date.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LineageAttempt {
    pub run: i64,
    pub task: String,
    pub attempt: u32,
    pub dag_id: String,
    pub dag_version: i64,
    pub dag_hash: String,
    pub params: Value,
    pub logical_date: String,
    pub state: Option<&'static str>,
    pub reason: Option<String>,
}

/// An artifact version, the attempt that wrote it and what that attempt read, recursively.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BuiltFrom {
    pub artifact: ArtifactView,
    pub produced_by: Option<LineageAttempt>,
    pub built_from: Vec<BuiltFrom>,
}

/// An attempt that read a version, and what it wrote.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UsedBy {
    #[serde(flatten)]
    pub attempt: LineageAttempt,
    pub wrote: Vec<Wrote>,
}

/// A version an attempt wrote, and the attempts that read it, recursively.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Wrote {
    pub artifact: ArtifactView,
    /// The same version was reached before in this answer: its readers are listed there.
    pub shown_above: bool,
    pub used_by: Vec<UsedBy>,
}

/// What an artifact version was built from and what was built from it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Lineage {
    #[serde(flatten)]
    pub version: BuiltFrom,
    pub used_by: Vec<UsedBy>,
}

/// Runs read once each while walking a lineage.
struct Runs<'s> {
    store: &'s dyn Store,
    runs: HashMap<RunId, RunDetail>,
    links: HashMap<(RunId, String), Vec<ArtifactLink>>,
    /// Hashes of DAG versions that are not their run's current one.
    hashes: HashMap<vane_store::DagVersionId, String>,
}

impl Runs<'_> {
    fn run(&mut self, id: RunId) -> Result<&RunDetail> {
        if !self.runs.contains_key(&id) {
            let detail = self.store.run(id)?;
            self.runs.insert(id, detail);
        }
        Ok(&self.runs[&id])
    }

    /// What one attempt read or wrote.
    fn links(&mut self, at: &AttemptRef, direction: Direction) -> Result<Vec<ArtifactLink>> {
        let key = (at.run, at.task.clone());
        if !self.links.contains_key(&key) {
            let links = self.store.attempt_links(at.run, Some(&at.task))?;
            self.links.insert(key.clone(), links);
        }
        Ok(self.links[&key]
            .iter()
            .filter(|l| l.attempt.attempt == at.attempt && l.direction == direction)
            .cloned()
            .collect())
    }

    /// The attempt with its run's DAG version, params and logical date.
    fn attempt(&mut self, at: &AttemptRef) -> Result<LineageAttempt> {
        let detail = self.run(at.run)?;
        let attempt = detail
            .tasks
            .iter()
            .find(|t| t.task_id == at.task)
            .and_then(|t| t.attempts.iter().find(|a| a.attempt == at.attempt));
        let run = &detail.run;
        let dag_version = attempt
            .and_then(|a| a.dag_version)
            .unwrap_or(run.dag_version);
        let (state, reason) = (
            attempt.map(|a| a.state.as_str()),
            attempt.and_then(|a| a.reason.clone()),
        );
        let (dag_id, params, logical_date) = (
            run.dag_id.clone(),
            run.params.clone(),
            run.logical_date.to_rfc3339(),
        );
        // A run cleared after its DAG file changed has moved on to the new version; an attempt
        // from before the clear ran the old one, and its hash must name that one.
        let dag_hash = if dag_version == run.dag_version {
            run.dag_hash.clone()
        } else if let Some(hash) = self.hashes.get(&dag_version) {
            hash.clone()
        } else {
            let hash = vane_engine::content_hash(&self.store.dag_source(dag_version)?);
            self.hashes.insert(dag_version, hash.clone());
            hash
        };
        Ok(LineageAttempt {
            run: at.run.0,
            task: at.task.clone(),
            attempt: at.attempt,
            dag_id,
            dag_version,
            dag_hash,
            params,
            logical_date,
            state,
            reason,
        })
    }

    /// What `version` was built from, recursively.
    fn upstream(
        &mut self,
        version: &ArtifactVersion,
        seen: &mut HashSet<i64>,
    ) -> Result<BuiltFrom> {
        let mut node = BuiltFrom {
            artifact: ArtifactView::of(version),
            produced_by: None,
            built_from: vec![],
        };
        let Some(producer) = &version.producer else {
            return Ok(node);
        };
        node.produced_by = Some(self.attempt(producer)?);
        if seen.insert(version.id) {
            for input in self.links(producer, Direction::Input)? {
                let from = self.upstream(&input.artifact, seen)?;
                node.built_from.push(from);
            }
        }
        Ok(node)
    }

    /// The attempts that read `version`, and what they wrote, recursively.
    fn downstream(
        &mut self,
        version: &ArtifactVersion,
        seen: &mut HashSet<i64>,
    ) -> Result<Vec<UsedBy>> {
        let mut used_by = Vec::new();
        if seen.insert(version.id) {
            let readers = self.store.artifact_links(version.id)?;
            for reader in readers.iter().filter(|l| l.direction == Direction::Input) {
                let attempt = self.attempt(&reader.attempt)?;
                let mut wrote = Vec::new();
                for output in self.links(&reader.attempt, Direction::Output)? {
                    wrote.push(Wrote {
                        artifact: ArtifactView::of(&output.artifact),
                        // A version reached twice (the same data rebuilt by later runs) lists
                        // its readers once.
                        shown_above: seen.contains(&output.artifact.id),
                        used_by: self.downstream(&output.artifact, seen)?,
                    });
                }
                used_by.push(UsedBy { attempt, wrote });
            }
        }
        Ok(used_by)
    }
}

/// `NAME[@VERSION]` (`@v3` too).
///
/// # Errors
/// [`AppError::Invalid`] when the version is not a number.
pub fn parse_artifact(text: &str) -> Result<(&str, Option<u32>)> {
    match text.split_once('@') {
        None => Ok((text, None)),
        Some((name, version)) => {
            // Said without the parser's words ("cannot parse integer from empty string"),
            // which name neither the input nor the fix.
            let number = version
                .strip_prefix('v')
                .unwrap_or(version)
                .parse::<u32>()
                .map_err(|_| {
                    AppError::Invalid(format!(
                        "`{text}`: the version after `@` must be a number, as in `{name}@3` or `{name}@v3`; found `{version}`"
                    ))
                })?;
            Ok((name, Some(number)))
        }
    }
}

/// What `NAME[@VERSION]` was built from (`built_from`, recursively) and what used it
/// (`used_by`), as `vane lineage --json` and `GET /api/artifacts/{name}/lineage` give it.
///
/// # Errors
/// [`AppError::NotFound`] when that artifact version is not recorded.
pub fn lineage_tree(store: &dyn Store, artifact: &str) -> Result<Lineage> {
    let (name, number) = parse_artifact(artifact)?;
    let version = match store.artifact_version(name, number) {
        Err(StoreError::NotFound(what)) => {
            // Sending a person to `vane artifacts NAME` for a name nothing recorded would only
            // get them a second "not found".
            let names: Vec<String> = {
                let mut names: Vec<String> = store
                    .artifact_versions(None)?
                    .into_iter()
                    .map(|v| v.name)
                    .collect();
                names.dedup();
                names
            };
            let hint = if names.iter().any(|n| n == name) {
                format!("`vane artifacts {name}` lists its versions")
            } else {
                let guess = vane_dag::did_you_mean(name, names.iter().map(String::as_str))
                    .map(|n| format!("did you mean `{n}`? "))
                    .unwrap_or_default();
                format!("{guess}`vane artifacts` lists every artifact")
            };
            return Err(AppError::NotFound(format!(
                "{what} is not recorded; {hint}"
            )));
        }
        other => other?,
    };
    let mut runs = Runs {
        store,
        runs: HashMap::new(),
        links: HashMap::new(),
        hashes: HashMap::new(),
    };
    Ok(Lineage {
        version: runs.upstream(&version, &mut HashSet::new())?,
        used_by: runs.downstream(&version, &mut HashSet::new())?,
    })
}

/// How two runs differ, as `vane diff` shows it.
#[derive(Debug)]
pub struct RunDiff {
    pub a: vane_store::RunRecord,
    pub b: vane_store::RunRecord,
    pub dag_version_changed: bool,
    /// Every param of either run, by name.
    pub params: Vec<ParamDiff>,
    /// Every (task, direction, artifact) slot of either run's latest attempts.
    pub artifacts: Vec<ArtifactDiff>,
    /// Every (task, metric) of either run's latest attempts.
    pub metrics: Vec<MetricDiff>,
}

/// One param in two runs; `None` where a run does not have it.
#[derive(Debug, Serialize)]
pub struct ParamDiff {
    pub name: String,
    pub a: Option<Value>,
    pub b: Option<Value>,
    pub changed: bool,
}

/// One artifact slot in two runs.
#[derive(Debug)]
pub struct ArtifactDiff {
    pub task: String,
    pub direction: Direction,
    pub name: String,
    pub a: Option<ArtifactVersion>,
    pub b: Option<ArtifactVersion>,
    pub changed: bool,
}

/// One metric in two runs, and `b - a` when both have it.
#[derive(Debug, Serialize)]
pub struct MetricDiff {
    pub task: String,
    pub name: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub delta: Option<f64>,
}

/// Compares two runs: DAG version, params, artifacts read and written, metrics.
///
/// # Errors
/// Either run does not exist, or the store cannot be read.
pub fn diff(store: &dyn Store, run_a: RunId, run_b: RunId) -> Result<RunDiff> {
    use std::collections::{BTreeMap, BTreeSet};
    let (a, b) = (store.run(run_a)?, store.run(run_b)?);
    let empty = serde_json::Map::new();
    let pa = a.run.params.as_object().unwrap_or(&empty);
    let pb = b.run.params.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = pa.keys().chain(pb.keys()).collect();
    let params = keys
        .into_iter()
        .map(|k| {
            let (va, vb) = (pa.get(k), pb.get(k));
            ParamDiff {
                name: k.clone(),
                changed: va != vb,
                a: va.cloned(),
                b: vb.cloned(),
            }
        })
        .collect();
    let (aa, ab) = (
        run_artifacts(store, a.run.id)?,
        run_artifacts(store, b.run.id)?,
    );
    let slots: BTreeSet<&(String, Direction, String)> = aa.keys().chain(ab.keys()).collect();
    let artifacts = slots
        .into_iter()
        .map(|key| {
            let (va, vb) = (aa.get(key), ab.get(key));
            ArtifactDiff {
                task: key.0.clone(),
                direction: key.1,
                name: key.2.clone(),
                changed: va.map(|v| v.id) != vb.map(|v| v.id),
                a: va.cloned(),
                b: vb.cloned(),
            }
        })
        .collect();
    let (ma, mb) = (latest_metrics(&a), latest_metrics(&b));
    let names: BTreeSet<&(String, String)> = ma.keys().chain(mb.keys()).collect();
    let metrics = names
        .into_iter()
        .map(|key| {
            let (va, vb) = (ma.get(key).copied(), mb.get(key).copied());
            MetricDiff {
                task: key.0.clone(),
                name: key.1.clone(),
                a: va,
                b: vb,
                delta: va.zip(vb).map(|(x, y)| y - x),
            }
        })
        .collect();
    return Ok(RunDiff {
        dag_version_changed: a.run.dag_version != b.run.dag_version,
        a: a.run,
        b: b.run,
        params,
        artifacts,
        metrics,
    });

    /// Per task, what its latest attempt with recorded artifacts read and wrote.
    fn run_artifacts(
        store: &dyn Store,
        run: RunId,
    ) -> Result<BTreeMap<(String, Direction, String), ArtifactVersion>> {
        let links = store.attempt_links(run, None)?;
        let mut latest: HashMap<&str, u32> = HashMap::new();
        for l in &links {
            let n = latest.entry(&l.attempt.task).or_default();
            *n = (*n).max(l.attempt.attempt);
        }
        Ok(links
            .iter()
            .filter(|l| latest[l.attempt.task.as_str()] == l.attempt.attempt)
            .map(|l| {
                (
                    (l.attempt.task.clone(), l.direction, l.artifact.name.clone()),
                    l.artifact.clone(),
                )
            })
            .collect())
    }
}

/// Per (task, metric), the value its latest attempt reported.
pub(crate) fn latest_metrics(
    detail: &RunDetail,
) -> std::collections::BTreeMap<(String, String), f64> {
    detail
        .tasks
        .iter()
        .filter_map(|t| t.attempts.last().map(|a| (t, a)))
        .flat_map(|(t, a)| {
            a.metrics
                .iter()
                .map(|(name, value)| ((t.task_id.clone(), name.clone()), *value))
        })
        .collect()
}

impl RunDiff {
    /// As `vane diff --json` gives it.
    #[must_use]
    pub fn json(&self) -> RunDiffJson<'_> {
        RunDiffJson {
            a: RunSide::of(&self.a),
            b: RunSide::of(&self.b),
            dag_version_changed: self.dag_version_changed,
            params: &self.params,
            artifacts: self
                .artifacts
                .iter()
                .map(|x| ArtifactSlot {
                    task: &x.task,
                    direction: x.direction.as_str(),
                    name: &x.name,
                    a: x.a.as_ref().map(ArtifactSide::of),
                    b: x.b.as_ref().map(ArtifactSide::of),
                    changed: x.changed,
                })
                .collect(),
            metrics: &self.metrics,
        }
    }
}

/// [`RunDiff`] as `vane diff --json` gives it: each run by its record's main fields, each
/// artifact by version and hash.
#[derive(Debug, Serialize)]
pub struct RunDiffJson<'a> {
    pub a: RunSide<'a>,
    pub b: RunSide<'a>,
    pub dag_version_changed: bool,
    pub params: &'a [ParamDiff],
    pub artifacts: Vec<ArtifactSlot<'a>>,
    pub metrics: &'a [MetricDiff],
}

/// One of the two runs of a [`RunDiffJson`].
#[derive(Debug, Serialize)]
pub struct RunSide<'a> {
    pub id: RunId,
    pub dag_id: &'a str,
    pub state: &'static str,
    pub logical_date: String,
    pub dag_version: VersionSide<'a>,
}

impl<'a> RunSide<'a> {
    fn of(r: &'a vane_store::RunRecord) -> Self {
        RunSide {
            id: r.id,
            dag_id: &r.dag_id,
            state: r.state.as_str(),
            logical_date: r.logical_date.to_rfc3339(),
            dag_version: VersionSide {
                id: r.dag_version,
                hash: &r.dag_hash,
            },
        }
    }
}

/// The DAG version a run was made from.
#[derive(Debug, Serialize)]
pub struct VersionSide<'a> {
    pub id: vane_store::DagVersionId,
    pub hash: &'a str,
}

/// One artifact slot of a [`RunDiffJson`].
#[derive(Debug, Serialize)]
pub struct ArtifactSlot<'a> {
    pub task: &'a str,
    pub direction: &'static str,
    pub name: &'a str,
    pub a: Option<ArtifactSide<'a>>,
    pub b: Option<ArtifactSide<'a>>,
    pub changed: bool,
}

/// An artifact's version in one run.
#[derive(Debug, Serialize)]
pub struct ArtifactSide<'a> {
    pub version: u32,
    pub hash: &'a str,
}

impl<'a> ArtifactSide<'a> {
    fn of(v: &'a ArtifactVersion) -> Self {
        ArtifactSide {
            version: v.version,
            hash: &v.hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_artifact;

    #[test]
    fn a_version_is_a_number_with_or_without_its_v() {
        assert_eq!(parse_artifact("features").unwrap(), ("features", None));
        assert_eq!(parse_artifact("features@3").unwrap(), ("features", Some(3)));
        assert_eq!(
            parse_artifact("features@v3").unwrap(),
            ("features", Some(3))
        );
        // `x@v` said "cannot parse integer from empty string".
        let error = parse_artifact("features@v").unwrap_err().to_string();
        assert_eq!(
            error,
            "`features@v`: the version after `@` must be a number, as in `features@3` or `features@v3`; found `v`"
        );
    }
}
