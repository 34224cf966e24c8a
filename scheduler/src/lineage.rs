//! `vane artifacts`, `vane lineage` and `vane diff`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::Value;
use vane_app::lineage::{ArtifactView, BuiltFrom, LineageAttempt, UsedBy, lineage_tree};
use vane_store::ArtifactVersion;

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
    /// The run to compare from (usually the older one, e.g. the last good run).
    pub(crate) run_a: vane_store::RunId,
    /// The run to compare with it.
    pub(crate) run_b: vane_store::RunId,
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
        let items: Vec<ArtifactView> = versions.iter().map(ArtifactView::of).collect();
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

/// Runs already described in a lineage printout: a run's DAG version, date and params are
/// said once, at its first attempt, not at every level of the tree.
type Said = std::collections::BTreeSet<i64>;

fn attempt_line(a: &LineageAttempt, said: &mut Said) -> String {
    let head = format!("run {} task {} attempt {}", a.run, a.task, a.attempt);
    if !said.insert(a.run) {
        return head;
    }
    let params = match a.params.as_object() {
        Some(p) if !p.is_empty() => format!(", params {}", a.params),
        _ => String::new(),
    };
    format!(
        "{head} (DAG {} version {}, logical date {}{params})",
        a.dag_id, a.dag_version, a.logical_date,
    )
}

fn artifact_line(a: &ArtifactView) -> String {
    format!(
        "{} v{} (sha256 {}, {}, {} bytes)",
        a.name,
        a.version,
        short(&a.hash),
        a.kind,
        a.size
    )
}

fn print_upstream(node: &BuiltFrom, depth: usize, said: &mut Said, out: &mut String) {
    let pad = "  ".repeat(depth);
    out.push_str(&format!("{pad}{}\n", artifact_line(&node.artifact)));
    match &node.produced_by {
        None => out.push_str(&format!("{pad}  not written by a task: read as an input\n")),
        Some(by) => out.push_str(&format!("{pad}  built by {}\n", attempt_line(by, said))),
    }
    // One heading for all of an attempt's inputs: a heading per input read as if each were
    // a separate list of what the version was built from.
    if !node.built_from.is_empty() {
        out.push_str(&format!("{pad}  from:\n"));
    }
    for child in &node.built_from {
        print_upstream(child, depth + 2, said, out);
    }
}

fn print_downstream(used_by: &[UsedBy], depth: usize, said: &mut Said, out: &mut String) {
    let pad = "  ".repeat(depth);
    for reader in used_by {
        out.push_str(&format!(
            "{pad}read by {}\n",
            attempt_line(&reader.attempt, said)
        ));
        for wrote in &reader.wrote {
            out.push_str(&format!(
                "{pad}  which wrote {}{}\n",
                artifact_line(&wrote.artifact),
                if wrote.shown_above {
                    "; its uses are listed above"
                } else {
                    ""
                }
            ));
            print_downstream(&wrote.used_by, depth + 2, said, out);
        }
    }
}

/// Where a model version stands in the registry, and which version serves when it is another:
/// the latest version of a model is often not the one in production (its canary failed), and
/// a person tracing "the model" means the one serving.
fn registry_line(store: &dyn vane_store::Store, artifact: &ArtifactView) -> Result<Option<String>> {
    let versions = store.model_versions(Some(&artifact.name))?;
    if versions.is_empty() {
        return Ok(None);
    }
    let this = versions
        .iter()
        .find(|v| v.version == i64::from(artifact.version));
    let stage = this.map_or_else(
        || "never rolled out".to_owned(),
        |v| format!("`{}` since {} ({})", v.stage, time(Some(v.since)), v.actor),
    );
    let production = versions.iter().find(|v| v.stage == "production");
    let serving = match production {
        Some(p) if this.is_none_or(|t| t.version != p.version) => format!(
            "; in production: v{} (`vane lineage {}@{}`)",
            p.version, artifact.name, p.version
        ),
        Some(_) => String::new(),
        None => "; no version is in production".to_owned(),
    };
    Ok(Some(format!("  in the model registry: {stage}{serving}\n")))
}

pub(crate) fn lineage(g: &Global, args: &LineageArgs) -> Result<ExitCode> {
    let store = crate::commands::open_store(g)?;
    let tree = lineage_tree(&*store, &args.artifact)?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&tree)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (mut out, mut said) = (String::new(), Said::new());
    print_upstream(&tree.version, 0, &mut said, &mut out);
    if let Some(line) = registry_line(&*store, &tree.version.artifact)? {
        let header = out.find('\n').map_or(out.len(), |at| at + 1);
        out.insert_str(header, &line);
    }
    if !tree.used_by.is_empty() {
        out.push_str("used by:\n");
        print_downstream(&tree.used_by, 1, &mut said, &mut out);
    } else {
        out.push_str("used by: nothing recorded yet\n");
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn diff(g: &Global, args: &DiffArgs) -> Result<ExitCode> {
    let d = vane_app::lineage::diff(&*crate::commands::open_store(g)?, args.run_a, args.run_b)?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&d.json())?);
        return Ok(ExitCode::SUCCESS);
    }
    let (ra, rb, dag_changed) = (&d.a, &d.b, d.dag_version_changed);
    let (params, artifacts, metrics) = (&d.params, &d.artifacts, &d.metrics);

    let mark = |changed: bool| if changed { "*" } else { "" }.to_owned();
    println!(
        "run {} ({}) vs run {} ({})",
        ra.id, ra.dag_id, rb.id, rb.dag_id
    );
    // Versions of two different DAGs are no change of one: say the runs are of two DAGs.
    let note = if ra.dag_id != rb.dag_id {
        "  two different DAGs"
    } else if dag_changed {
        "  changed"
    } else {
        ""
    };
    println!(
        "dag version: {} (sha256 {}) -> {} (sha256 {}){note}",
        ra.dag_version,
        short(&ra.dag_hash),
        rb.dag_version,
        short(&rb.dag_hash),
    );
    let show = |v: Option<&Value>| {
        v.map_or_else(
            || "-".into(),
            |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned),
        )
    };
    println!("\nparams:");
    if params.is_empty() {
        println!("  none");
    } else {
        let rows: Vec<Vec<String>> = params
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    show(p.a.as_ref().filter(|v| !v.is_null())),
                    show(p.b.as_ref().filter(|v| !v.is_null())),
                    mark(p.changed),
                ]
            })
            .collect();
        print!("{}", indent(&table(&["NAME", "A", "B", "CHANGED"], &rows)));
    }
    println!("\nartifacts:");
    if artifacts.is_empty() {
        println!("  none recorded");
    } else {
        let version = |v: &Option<ArtifactVersion>| {
            v.as_ref().map_or_else(
                || "-".to_owned(),
                |v| format!("v{} ({})", v.version, short(&v.hash)),
            )
        };
        let rows: Vec<Vec<String>> = artifacts
            .iter()
            .map(|x| {
                vec![
                    x.task.clone(),
                    x.direction.as_str().to_owned(),
                    x.name.clone(),
                    version(&x.a),
                    version(&x.b),
                    mark(x.changed),
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
        // As a person reads them: `+0.15`, not `+0.15000000000000002`.
        let number = |v: Option<f64>| v.map_or_else(|| "-".into(), vane_deploy::num);
        let rows: Vec<Vec<String>> = metrics
            .iter()
            .map(|m| {
                vec![
                    m.task.clone(),
                    m.name.clone(),
                    number(m.a),
                    number(m.b),
                    m.delta.map_or_else(
                        || "-".into(),
                        // Unchanged is `0`, as `vane metrics` shows it, not `+0`.
                        |d| {
                            let shown = vane_deploy::num(d);
                            if d == 0.0 || shown.starts_with('-') {
                                shown
                            } else {
                                format!("+{shown}")
                            }
                        },
                    ),
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
