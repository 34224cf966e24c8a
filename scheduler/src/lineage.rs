//! `vane artifacts`, `vane lineage` and `vane diff`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};
use vane_app::lineage::{lineage_tree, version_json};
use vane_store::{ArtifactVersion, Direction, RunDetail, RunId, Store};

use crate::cli::{Global, JsonFlag};
use crate::output::{table, time};

#[derive(Debug, Args)]
pub(crate) struct ArtifactsArgs {
    /// List every version of this artifact; without it, every artifact with its latest version.
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct LineageArgs {
    /// NAME or NAME@VERSION (e.g. `model@3`); without a version, the latest.
    #[arg(value_name = "NAME[@VERSION]")]
    pub(crate) artifact: String,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    pub(crate) run_a: i64,
    pub(crate) run_b: i64,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

/// The first 12 hex digits of a hash: enough to tell versions apart by eye.
fn short(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}

fn producer_text(v: &ArtifactVersion) -> String {
    v.producer.as_ref().map_or_else(
        || "- (read, never written)".into(),
        |p| format!("run {} {} #{}", p.run, p.task, p.attempt),
    )
}

pub(crate) fn artifacts(g: &Global, args: &ArtifactsArgs) -> Result<ExitCode> {
    let versions =
        vane_app::lineage::versions(&*crate::commands::open_store(g)?, args.name.as_deref())?;
    if args.json.json {
        let items: Vec<Value> = versions.iter().map(version_json).collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    if versions.is_empty() {
        println!("no artifacts recorded yet: declare `inputs` and `outputs` on tasks");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = if args.name.is_some() {
        versions
            .iter()
            .map(|v| {
                vec![
                    v.name.clone(),
                    v.version.to_string(),
                    short(&v.hash).to_owned(),
                    v.kind.to_string(),
                    v.size.to_string(),
                    producer_text(v),
                    time(Some(v.created_at)),
                ]
            })
            .collect()
    } else {
        // Versions come by name then version: the last of each name is its latest.
        let mut latest: BTreeMap<&str, (&ArtifactVersion, usize)> = BTreeMap::new();
        for v in &versions {
            let entry = latest.entry(&v.name).or_insert((v, 0));
            *entry = (v, entry.1 + 1);
        }
        latest
            .values()
            .map(|(v, count)| {
                vec![
                    v.name.clone(),
                    format!("{} ({count} in all)", v.version),
                    short(&v.hash).to_owned(),
                    v.kind.to_string(),
                    v.size.to_string(),
                    producer_text(v),
                    time(Some(v.created_at)),
                ]
            })
            .collect()
    };
    print!(
        "{}",
        table(
            &[
                "NAME",
                "VERSION",
                "SHA256",
                "KIND",
                "BYTES",
                "PRODUCED BY",
                "FIRST SEEN"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn attempt_line(a: &Value) -> String {
    format!(
        "run {} task {} attempt {} (DAG {} version {}, logical date {}, params {})",
        a["run"],
        str_of(&a["task"]),
        a["attempt"],
        str_of(&a["dag_id"]),
        a["dag_version"],
        str_of(&a["logical_date"]),
        a["params"]
    )
}

fn str_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn artifact_line(a: &Value) -> String {
    format!(
        "{} v{} (sha256 {}, {}, {} bytes)",
        str_of(&a["name"]),
        a["version"],
        short(a["hash"].as_str().unwrap_or_default()),
        str_of(&a["kind"]),
        a["size"]
    )
}

fn print_upstream(node: &Value, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    out.push_str(&format!("{pad}{}\n", artifact_line(&node["artifact"])));
    match node["produced_by"].is_null() {
        true => out.push_str(&format!("{pad}  not written by a task: read as an input\n")),
        false => out.push_str(&format!(
            "{pad}  built by {}\n",
            attempt_line(&node["produced_by"])
        )),
    }
    for child in node["built_from"].as_array().into_iter().flatten() {
        out.push_str(&format!("{pad}  from:\n"));
        print_upstream(child, depth + 2, out);
    }
}

fn print_downstream(used_by: &Value, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for reader in used_by.as_array().into_iter().flatten() {
        out.push_str(&format!("{pad}read by {}\n", attempt_line(reader)));
        for wrote in reader["wrote"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "{pad}  which wrote {}{}\n",
                artifact_line(&wrote["artifact"]),
                if wrote["shown_above"] == true {
                    "; its uses are listed above"
                } else {
                    ""
                }
            ));
            print_downstream(&wrote["used_by"], depth + 2, out);
        }
    }
}

pub(crate) fn lineage(g: &Global, args: &LineageArgs) -> Result<ExitCode> {
    let tree = lineage_tree(&*crate::commands::open_store(g)?, &args.artifact)?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&tree)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    print_upstream(&tree, 0, &mut out);
    if tree["used_by"].as_array().is_some_and(|a| !a.is_empty()) {
        out.push_str("used by:\n");
        print_downstream(&tree["used_by"], 1, &mut out);
    } else {
        out.push_str("used by: nothing recorded yet\n");
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Per task, what its latest attempt with recorded artifacts read and wrote:
/// (task, direction, name) → version.
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

pub(crate) fn diff(g: &Global, args: &DiffArgs) -> Result<ExitCode> {
    let store = crate::commands::open_store(g)?;
    let (a, b) = (store.run(args.run_a)?, store.run(args.run_b)?);
    let (ra, rb) = (&a.run, &b.run);

    let empty = serde_json::Map::new();
    let pa = ra.params.as_object().unwrap_or(&empty);
    let pb = rb.params.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = pa.keys().chain(pb.keys()).collect();
    let params: Vec<Value> = keys
        .iter()
        .map(|k| {
            let (va, vb) = (pa.get(*k), pb.get(*k));
            json!({ "name": k, "a": va, "b": vb, "changed": va != vb })
        })
        .collect();

    let (aa, ab) = (
        run_artifacts(&*store, ra.id)?,
        run_artifacts(&*store, rb.id)?,
    );
    let slots: BTreeSet<&(String, Direction, String)> = aa.keys().chain(ab.keys()).collect();
    let artifacts: Vec<Value> = slots
        .iter()
        .map(|key| {
            let (va, vb) = (aa.get(*key), ab.get(*key));
            json!({
                "task": key.0,
                "direction": key.1.as_str(),
                "name": key.2,
                "a": va.map(|v| json!({ "version": v.version, "hash": v.hash })),
                "b": vb.map(|v| json!({ "version": v.version, "hash": v.hash })),
                "changed": va.map(|v| v.id) != vb.map(|v| v.id),
            })
        })
        .collect();

    let (ma, mb) = (run_metrics(&a), run_metrics(&b));
    let names: BTreeSet<&(String, String)> = ma.keys().chain(mb.keys()).collect();
    let metrics: Vec<Value> = names
        .iter()
        .map(|key| {
            let (va, vb) = (ma.get(*key), mb.get(*key));
            let delta = va.zip(vb).map(|(x, y)| y - x);
            json!({ "task": key.0, "name": key.1, "a": va, "b": vb, "delta": delta })
        })
        .collect();

    let dag_changed = ra.dag_version != rb.dag_version;
    if args.json.json {
        let run = |r: &vane_store::RunRecord| {
            json!({
                "id": r.id, "dag_id": r.dag_id, "state": r.state.as_str(),
                "logical_date": r.logical_date.to_rfc3339(),
                "dag_version": { "id": r.dag_version, "hash": r.dag_hash },
            })
        };
        let value = json!({
            "a": run(ra),
            "b": run(rb),
            "dag_version_changed": dag_changed,
            "params": params,
            "artifacts": artifacts,
            "metrics": metrics,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }

    let mark = |changed: bool| if changed { "*" } else { "" }.to_owned();
    println!(
        "run {} ({}) vs run {} ({})",
        ra.id, ra.dag_id, rb.id, rb.dag_id
    );
    println!(
        "dag version: {} (sha256 {}) -> {} (sha256 {}){}",
        ra.dag_version,
        short(&ra.dag_hash),
        rb.dag_version,
        short(&rb.dag_hash),
        if dag_changed { "  changed" } else { "" }
    );
    let show = |v: Option<&Value>| v.map_or_else(|| "-".into(), str_of);
    println!("\nparams:");
    if params.is_empty() {
        println!("  none");
    } else {
        let rows: Vec<Vec<String>> = params
            .iter()
            .map(|p| {
                vec![
                    str_of(&p["name"]),
                    show(p.get("a").filter(|v| !v.is_null())),
                    show(p.get("b").filter(|v| !v.is_null())),
                    mark(p["changed"] == true),
                ]
            })
            .collect();
        print!("{}", indent(&table(&["NAME", "A", "B", "CHANGED"], &rows)));
    }
    println!("\nartifacts:");
    if artifacts.is_empty() {
        println!("  none recorded");
    } else {
        let version = |v: &Value| {
            if v.is_null() {
                "-".to_owned()
            } else {
                format!(
                    "v{} ({})",
                    v["version"],
                    short(v["hash"].as_str().unwrap_or_default())
                )
            }
        };
        let rows: Vec<Vec<String>> = artifacts
            .iter()
            .map(|x| {
                vec![
                    str_of(&x["task"]),
                    str_of(&x["direction"]),
                    str_of(&x["name"]),
                    version(&x["a"]),
                    version(&x["b"]),
                    mark(x["changed"] == true),
                ]
            })
            .collect();
        print!(
            "{}",
            indent(&table(
                &["TASK", "DIRECTION", "NAME", "A", "B", "CHANGED"],
                &rows
            ))
        );
    }
    println!("\nmetrics:");
    if metrics.is_empty() {
        println!("  none recorded");
    } else {
        let number = |v: &Value| v.as_f64().map_or_else(|| "-".into(), |n| format!("{n}"));
        let rows: Vec<Vec<String>> = metrics
            .iter()
            .map(|m| {
                vec![
                    str_of(&m["task"]),
                    str_of(&m["name"]),
                    number(&m["a"]),
                    number(&m["b"]),
                    m["delta"]
                        .as_f64()
                        .map_or_else(|| "-".into(), |d| format!("{d:+}")),
                ]
            })
            .collect();
        print!(
            "{}",
            indent(&table(&["TASK", "METRIC", "A", "B", "DELTA"], &rows))
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
