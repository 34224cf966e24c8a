//! Artifacts and their lineage: what a version was built from and what used it.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
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
#[must_use]
pub fn version_json(v: &ArtifactVersion) -> Value {
    json!({
        "name": v.name,
        "version": v.version,
        "hash": v.hash,
        "kind": v.kind.as_str(),
        "size": v.size,
        "path": v.path,
        "stored": v.stored,
        "created_at": v.created_at.to_rfc3339(),
        "producer": v.producer.as_ref().map(|p| json!({
            "run": p.run, "task": p.task, "attempt": p.attempt,
        })),
    })
}

/// Runs read once each while walking a lineage.
struct Runs<'s> {
    store: &'s dyn Store,
    runs: HashMap<RunId, RunDetail>,
    links: HashMap<(RunId, String), Vec<ArtifactLink>>,
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
    fn attempt_json(&mut self, at: &AttemptRef) -> Result<Value> {
        let detail = self.run(at.run)?;
        let attempt = detail
            .tasks
            .iter()
            .find(|t| t.task_id == at.task)
            .and_then(|t| t.attempts.iter().find(|a| a.attempt == at.attempt));
        let run = &detail.run;
        Ok(json!({
            "run": at.run,
            "task": at.task,
            "attempt": at.attempt,
            "dag_id": run.dag_id,
            "dag_version": attempt.and_then(|a| a.dag_version).unwrap_or(run.dag_version),
            "dag_hash": run.dag_hash,
            "params": run.params,
            "logical_date": run.logical_date.to_rfc3339(),
            "state": attempt.map(|a| a.state.as_str()),
            "reason": attempt.and_then(|a| a.reason.clone()),
        }))
    }

    /// What `version` was built from, recursively.
    fn upstream(&mut self, version: &ArtifactVersion, seen: &mut HashSet<i64>) -> Result<Value> {
        let mut node = json!({ "artifact": version_json(version) });
        let Some(producer) = &version.producer else {
            node["produced_by"] = Value::Null;
            node["built_from"] = json!([]);
            return Ok(node);
        };
        node["produced_by"] = self.attempt_json(producer)?;
        let mut from = Vec::new();
        if seen.insert(version.id) {
            for input in self.links(producer, Direction::Input)? {
                from.push(self.upstream(&input.artifact, seen)?);
            }
        }
        node["built_from"] = Value::Array(from);
        Ok(node)
    }

    /// The attempts that read `version`, and what they wrote, recursively.
    fn downstream(&mut self, version: &ArtifactVersion, seen: &mut HashSet<i64>) -> Result<Value> {
        let mut used_by = Vec::new();
        if seen.insert(version.id) {
            let readers = self.store.artifact_links(version.id)?;
            for reader in readers.iter().filter(|l| l.direction == Direction::Input) {
                let mut entry = self.attempt_json(&reader.attempt)?;
                let mut outputs = Vec::new();
                for output in self.links(&reader.attempt, Direction::Output)? {
                    let mut child = json!({ "artifact": version_json(&output.artifact) });
                    // A version reached twice (the same data rebuilt by later runs) lists
                    // its readers once.
                    child["shown_above"] = seen.contains(&output.artifact.id).into();
                    child["used_by"] = self.downstream(&output.artifact, seen)?;
                    outputs.push(child);
                }
                entry["wrote"] = Value::Array(outputs);
                used_by.push(entry);
            }
        }
        Ok(Value::Array(used_by))
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
            let version = version.trim_start_matches('v');
            let number = version.parse().map_err(|e| {
                AppError::Invalid(format!(
                    "`{text}`: the version after `@` must be a number, as in `{name}@3`: {e}"
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
pub fn lineage_tree(store: &dyn Store, artifact: &str) -> Result<Value> {
    let (name, number) = parse_artifact(artifact)?;
    let version = match store.artifact_version(name, number) {
        Err(StoreError::NotFound(what)) => {
            return Err(AppError::NotFound(format!(
                "{what} is not recorded; `vane artifacts {name}` lists its versions, `vane artifacts` every artifact"
            )));
        }
        other => other?,
    };
    let mut runs = Runs {
        store,
        runs: HashMap::new(),
        links: HashMap::new(),
    };
    let mut tree = runs.upstream(&version, &mut HashSet::new())?;
    tree["used_by"] = runs.downstream(&version, &mut HashSet::new())?;
    Ok(tree)
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
#[derive(Debug)]
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
#[derive(Debug)]
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
    let (ma, mb) = (run_metrics(&a), run_metrics(&b));
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

    /// Per task, the metrics of its latest attempt.
    fn run_metrics(detail: &RunDetail) -> BTreeMap<(String, String), f64> {
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
}

impl RunDiff {
    /// As `vane diff --json` gives it.
    #[must_use]
    pub fn json(&self) -> Value {
        let run = |r: &vane_store::RunRecord| {
            json!({
                "id": r.id, "dag_id": r.dag_id, "state": r.state.as_str(),
                "logical_date": r.logical_date.to_rfc3339(),
                "dag_version": { "id": r.dag_version, "hash": r.dag_hash },
            })
        };
        let version = |v: &Option<ArtifactVersion>| {
            v.as_ref()
                .map(|v| json!({ "version": v.version, "hash": v.hash }))
        };
        json!({
            "a": run(&self.a),
            "b": run(&self.b),
            "dag_version_changed": self.dag_version_changed,
            "params": self.params.iter().map(|p| json!({ "name": p.name, "a": p.a, "b": p.b, "changed": p.changed })).collect::<Vec<_>>(),
            "artifacts": self.artifacts.iter().map(|x| json!({
                "task": x.task,
                "direction": x.direction.as_str(),
                "name": x.name,
                "a": version(&x.a),
                "b": version(&x.b),
                "changed": x.changed,
            })).collect::<Vec<_>>(),
            "metrics": self.metrics.iter().map(|m| json!({ "task": m.task, "name": m.name, "a": m.a, "b": m.b, "delta": m.delta })).collect::<Vec<_>>(),
        })
    }
}
