//! `vane models`, `approve`, `reject`, `promote` and `rollback`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{Value, json};
use vane_dag::Builtin;
use vane_engine::TemplateVars;
use vane_store::{
    LedgerEntry, ModelVersion, RegistryStore, RolloutStage, StageChange, Store, production_at,
};

use crate::cli::{Global, JsonFlag};
use crate::commands::open_store;
use crate::output::{table, time};

#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    /// A model's registry name: list its versions, the rollouts waiting, and its stage ledger.
    pub(crate) name: Option<String>,
    /// Say which version was in production at this time (`2026-11-23`, RFC 3339).
    #[arg(long)]
    pub(crate) at: Option<String>,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct ApproveArgs {
    /// The run whose rollout waits.
    pub(crate) run_id: i64,
    /// The stage to approve [default: every stage of the run that waits].
    #[arg(long)]
    pub(crate) stage: Option<String>,
    /// Who approves, as the ledger records it [default: $USER].
    #[arg(long)]
    pub(crate) by: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RejectArgs {
    /// The run whose rollout waits.
    pub(crate) run_id: i64,
    /// Why; recorded in the ledger and the run's failure reason.
    #[arg(long)]
    pub(crate) reason: String,
    /// The stage to reject [default: every stage of the run that waits].
    #[arg(long)]
    pub(crate) stage: Option<String>,
    /// Who rejects [default: $USER].
    #[arg(long)]
    pub(crate) by: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PromoteArgs {
    /// The model's registry name.
    pub(crate) name: String,
    /// The version to move.
    pub(crate) version: i64,
    /// The stage to put it in (`production` archives the version there now).
    #[arg(long)]
    pub(crate) stage: String,
    /// Why; recorded in the ledger.
    #[arg(long)]
    pub(crate) reason: String,
    /// Who [default: $USER].
    #[arg(long)]
    pub(crate) by: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    /// The model's registry name.
    pub(crate) name: String,
    /// The version to put back [default: the one in production before the current one].
    #[arg(long)]
    pub(crate) to: Option<i64>,
    /// Why; recorded in the ledger.
    #[arg(long)]
    pub(crate) reason: String,
    /// Who [default: $USER].
    #[arg(long)]
    pub(crate) by: Option<String>,
}

pub(crate) fn who(by: Option<&String>) -> String {
    by.cloned()
        .or_else(|| std::env::var("USER").ok())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn version_json(v: &ModelVersion) -> Value {
    json!({
        "model": v.model, "version": v.version, "hash": v.hash, "path": v.path,
        "stored": v.stored, "stage": v.stage, "since": v.since.to_rfc3339(),
        "actor": v.actor, "run_id": v.run_id,
    })
}

fn ledger_json(e: &LedgerEntry) -> Value {
    json!({
        "id": e.id, "model": e.model, "version": e.version, "from_stage": e.from_stage,
        "to_stage": e.to_stage, "at": e.at.to_rfc3339(), "actor": e.actor, "run_id": e.run_id,
        "reason": e.reason, "evidence": e.evidence,
    })
}

pub(crate) fn stage_json(s: &RolloutStage) -> Value {
    json!({
        "run_id": s.run_id, "task_id": s.task_id, "stage": s.stage, "model": s.model,
        "version": s.version, "status": s.status, "detail": s.detail, "evidence": s.evidence,
        "decided_by": s.decided_by, "reason": s.reason, "updated_at": s.updated_at.to_rfc3339(),
    })
}

/// What each gate saw, one line per gate, from ledger or stage evidence.
fn evidence_lines(evidence: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(gates) = evidence["gates"].as_array() {
        for g in gates {
            out.push(format!(
                "{}: {} ({})",
                g["gate"].as_str().unwrap_or("?"),
                g["status"].as_str().unwrap_or("?"),
                g["detail"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(min) = evidence["min_samples"].as_u64() {
        let seen = evidence["metrics"]["samples"]
            .as_f64()
            .map_or_else(|| "none".to_owned(), vane_deploy::num);
        out.push(format!("samples: {seen} (min_samples = {min})"));
    }
    if let Some(why) = evidence["inconclusive"].as_str() {
        out.push(format!("inconclusive: {why}"));
    }
    out
}

fn parse_at(text: &str) -> Result<DateTime<Utc>> {
    vane_dag::parse_when(text, chrono_tz::UTC, true)
        .map_err(|e| anyhow!("--at `{text}`: {e}; write a date (2026-11-23) or an RFC 3339 time"))
}

/// Model versions and the ledger, of every model or of one.
///
/// # Errors
/// [`crate::http::Missing`] when no model has that name.
fn registry(
    store: &vane_store::SqliteStore,
    name: Option<&str>,
) -> Result<(Vec<ModelVersion>, Vec<LedgerEntry>)> {
    let versions = store.model_versions(name)?;
    if let Some(name) = name
        && versions.is_empty()
    {
        return Err(crate::http::Missing(format!(
            "no model `{name}` in the registry: a `kind = \"deploy\"` task with `model = \"{name}\"` registers it when it runs"
        ))
        .into());
    }
    Ok((versions, store.ledger(name)?))
}

fn waiting(store: &vane_store::SqliteStore, name: Option<&str>) -> Result<Vec<RolloutStage>> {
    Ok(store
        .rollout_stages(None)?
        .into_iter()
        .filter(|s| s.status == "waiting" && name.is_none_or(|n| s.model == n))
        .collect())
}

/// Versions, waiting rollouts and the ledger, as `vane models [NAME] --json` and
/// `GET /api/models[/{name}]` give them.
pub(crate) fn models_json(g: &Global, name: Option<&str>) -> Result<Value> {
    let store = open_store(g)?;
    let (versions, ledger) = registry(&store, name)?;
    let waiting = waiting(&store, name)?;
    Ok(json!({
        "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
        "waiting": waiting.iter().map(stage_json).collect::<Vec<_>>(),
        "ledger": ledger.iter().map(ledger_json).collect::<Vec<_>>(),
    }))
}

pub(crate) fn models(g: &Global, args: &ModelsArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let name = args.name.as_deref();
    let (versions, ledger) = registry(&store, name)?;
    let mut names: Vec<&str> = versions.iter().map(|v| v.model.as_str()).collect();
    names.dedup();
    if let Some(at) = &args.at {
        let at = parse_at(at)?;
        let answers: Vec<(&str, Option<i64>)> = names
            .iter()
            .map(|m| (*m, production_at(&ledger, m, at)))
            .collect();
        if args.json.json {
            let list: Vec<Value> = answers
                .iter()
                .map(|(m, v)| json!({ "model": m, "at": at.to_rfc3339(), "production": v }))
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        } else {
            for (m, v) in answers {
                match v {
                    Some(v) => println!("{m}: v{v} was in production at {}", time(Some(at))),
                    None => println!("{m}: nothing was in production at {}", time(Some(at))),
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&models_json(g, name)?)?);
        return Ok(ExitCode::SUCCESS);
    }
    let waiting = waiting(&store, name)?;
    if name.is_none() {
        let rows: Vec<Vec<String>> = names
            .iter()
            .map(|m| {
                let of: Vec<&ModelVersion> = versions.iter().filter(|v| v.model == *m).collect();
                let prod = of.iter().find(|v| v.stage == "production");
                vec![
                    (*m).to_owned(),
                    prod.map_or_else(|| "-".into(), |p| format!("v{}", p.version)),
                    of.len().to_string(),
                    time(of.iter().map(|v| v.since).max()),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("no models yet: a `kind = \"deploy\"` task registers its model when it runs");
        } else {
            print!(
                "{}",
                table(&["MODEL", "PRODUCTION", "VERSIONS", "LAST CHANGE"], &rows)
            );
        }
    } else {
        let rows: Vec<Vec<String>> = versions
            .iter()
            .map(|v| {
                vec![
                    format!("v{}", v.version),
                    v.stage.clone(),
                    time(Some(v.since)),
                    v.actor.clone(),
                    v.hash[..v.hash.len().min(12)].to_owned(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["VERSION", "STAGE", "SINCE", "BY", "HASH"], &rows)
        );
    }
    for w in &waiting {
        println!(
            "\nrun {} ({} v{}) waits at stage `{}`: {}",
            w.run_id,
            w.model,
            w.version,
            w.stage,
            w.detail.as_deref().unwrap_or("")
        );
        for line in evidence_lines(&w.evidence) {
            println!("  {line}");
        }
    }
    if name.is_some() {
        println!("\nledger:");
        for e in &ledger {
            println!(
                "{}  v{}  {} -> {}  by {}{}",
                time(Some(e.at)),
                e.version,
                e.from_stage.as_deref().unwrap_or("-"),
                e.to_stage,
                e.actor,
                e.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            for line in evidence_lines(&e.evidence) {
                println!("    {line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn decide(
    g: &Global,
    run: i64,
    stage: Option<&str>,
    status: &str,
    by: &str,
    reason: Option<&str>,
) -> Result<Vec<RolloutStage>> {
    let store = open_store(g)?;
    let detail = store.run(run).map_err(|e| match e {
        vane_store::StoreError::NotFound(_) => anyhow::Error::from(crate::http::Missing(format!(
            "there is no run {run}: `vane runs` lists the runs"
        ))),
        other => other.into(),
    })?;
    if detail.run.state != vane_store::RunState::Running {
        return Err(crate::http::Conflict(format!(
            "run {run} is {}, not running: only a running rollout can be approved or rejected; start a new run to roll the model out again",
            detail.run.state
        ))
        .into());
    }
    let decided = store.decide_rollout(run, stage, status, by, reason)?;
    if decided.is_empty() {
        let stages = store.rollout_stages(Some(run))?;
        let known: Vec<String> = stages
            .iter()
            .map(|s| format!("{} ({})", s.stage, s.status))
            .collect();
        let at = stage
            .map(|s| format!(" at stage `{s}`"))
            .unwrap_or_default();
        let why = if known.is_empty() {
            format!("run {run} has no rollout: only a `kind = \"deploy\"` task waits for approval")
        } else {
            format!(
                "run {run} has no rollout waiting{at}; its stages: {}",
                known.join(", ")
            )
        };
        return Err(crate::http::Conflict(why).into());
    }
    Ok(decided)
}

pub(crate) fn approve(g: &Global, args: &ApproveArgs) -> Result<ExitCode> {
    let by = who(args.by.as_ref());
    for s in decide(g, args.run_id, args.stage.as_deref(), "approved", &by, None)? {
        println!(
            "approved stage `{}` of run {} ({} v{}) as {by}; the rollout goes on",
            s.stage, s.run_id, s.model, s.version
        );
        for line in evidence_lines(&s.evidence) {
            println!("  {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn reject(g: &Global, args: &RejectArgs) -> Result<ExitCode> {
    let by = who(args.by.as_ref());
    for s in decide(
        g,
        args.run_id,
        args.stage.as_deref(),
        "rejected",
        &by,
        Some(&args.reason),
    )? {
        println!(
            "rejected stage `{}` of run {} ({} v{}) as {by}; the rollout rolls back",
            s.stage, s.run_id, s.model, s.version
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn promote(g: &Global, args: &PromoteArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let by = who(args.by.as_ref());
    if matches!(args.stage.as_str(), "registered") {
        bail!("`registered` is where versions start; promote to a stage, `archived` or `failed`");
    }
    let mut stages = declared_stages(&store, &args.name)?;
    stages.extend(["archived".to_owned(), "failed".to_owned()]);
    if !stages.contains(&args.stage) {
        let hint = did_you_mean(&args.stage, &stages)
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        bail!(
            "{} has no stage `{}`: {hint}its deploy tasks declare {}",
            args.name,
            args.stage,
            stages
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    store
        .set_stage(&StageChange {
            model: &args.name,
            version: args.version,
            to_stage: &args.stage,
            actor: &format!("user {by}"),
            run: None,
            reason: Some(&args.reason),
            evidence: &json!({}),
        })
        .map_err(|e| match e {
            vane_store::StoreError::NotFound(what) => anyhow!(
                "{what} is not registered: `vane models {}` lists its versions",
                args.name
            ),
            other => other.into(),
        })?;
    println!(
        "{} v{} is now in `{}` (by {by}: {})",
        args.name, args.version, args.stage, args.reason
    );
    Ok(ExitCode::SUCCESS)
}

/// The deploy tasks of `model` in the DAG versions of the runs that rolled it out, newest
/// run first, with the run they belong to.
fn deploy_tasks(store: &dyn Store, model: &str) -> Result<Vec<(i64, vane_dag::Dag, String)>> {
    let mut runs: Vec<i64> = store
        .rollout_stages(None)?
        .into_iter()
        .filter(|s| s.model == model)
        .map(|s| s.run_id)
        .chain(
            store
                .ledger(Some(model))?
                .into_iter()
                .filter_map(|e| e.run_id),
        )
        .collect();
    runs.sort_unstable();
    runs.dedup();
    let mut out = Vec::new();
    for run in runs.into_iter().rev() {
        let detail = store.run(run)?;
        let source = store.dag_source(detail.run.dag_version)?;
        let Some(dag) = vane_dag::parse_dag(&source, &detail.run.dag_id).dag else {
            continue;
        };
        let tasks: Vec<String> = dag
            .tasks
            .iter()
            .filter(|t| matches!(&t.builtin, Some(Builtin::Deploy(spec)) if spec.model == model))
            .map(|t| t.id.clone())
            .collect();
        for task in tasks {
            out.push((run, dag.clone(), task));
        }
    }
    Ok(out)
}

/// The stage names the deploy tasks of `model` declare, in every recorded DAG version.
fn declared_stages(store: &dyn Store, model: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (_, dag, task) in deploy_tasks(store, model)? {
        let Some(Builtin::Deploy(spec)) = dag
            .tasks
            .iter()
            .find(|t| t.id == task)
            .and_then(|t| t.builtin.as_ref())
        else {
            continue;
        };
        for stage in &spec.stages {
            if !names.contains(&stage.name) {
                names.push(stage.name.clone());
            }
        }
    }
    Ok(names)
}

/// The closest of `candidates` to a mistyped `word`, if one is close enough to be a typo.
fn did_you_mean<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    };
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (distance(word, c), c.as_str()))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// How the deploy task that last rolled `model` out runs its `rollback` command: the command
/// rendered as in that run, the folder the engine would run it in, and the environment the
/// engine gives that task (`VANE_RUN_ID`, `VANE_DS`, ..., `VANE_WORK`, params, the task's `env`).
struct RollbackCommand {
    command: String,
    cwd: PathBuf,
    env: Vec<(String, String)>,
}

fn rollback_command(g: &Global, store: &dyn Store, model: &str) -> Result<Option<RollbackCommand>> {
    let Some((run, dag, task_id)) = deploy_tasks(store, model)?.into_iter().next() else {
        return Ok(None);
    };
    let Some(task) = dag.tasks.iter().find(|t| t.id == task_id) else {
        return Ok(None);
    };
    let Some(Builtin::Deploy(spec)) = &task.builtin else {
        return Ok(None);
    };
    let Some(rollback) = &spec.rollback else {
        return Ok(None);
    };
    let detail = store.run(run)?;
    let state_dir =
        g.db.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf);
    let work = std::path::absolute(g.work.clone().unwrap_or_else(|| state_dir.join("work")))?;
    let params = dag.params_from_json(&detail.run.params);
    let vars = TemplateVars::new(
        &dag,
        &params,
        detail.run.logical_date,
        run,
        &task.id,
        1,
        &work,
    );
    let lookup = |v: &vane_dag::Var| vars.lookup(v);
    // Like `vane run`, the project root is the folder vane runs in.
    let root = std::env::current_dir().context("cannot read the current folder")?;
    let cwd = match &task.cwd {
        Some(cwd) => root.join(cwd.render_plain(lookup)),
        None => root,
    };
    let mut env = vars.env();
    env.extend(
        task.env
            .iter()
            .map(|(name, value)| (name.clone(), value.render_plain(lookup))),
    );
    Ok(Some(RollbackCommand {
        command: rollback.render_plain(lookup),
        cwd,
        env,
    }))
}

pub(crate) fn rollback(g: &Global, args: &RollbackArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let by = who(args.by.as_ref());
    let model = args.name.as_str();
    let versions = store.model_versions(Some(model))?;
    if versions.is_empty() {
        return Err(crate::http::Missing(format!(
            "no model `{model}` in the registry: `vane models` lists the models"
        ))
        .into());
    }
    let current = versions.iter().find(|v| v.stage == "production");
    let target = match args.to {
        Some(to) => to,
        None => {
            let ledger = store.ledger(Some(model))?;
            ledger
                .iter()
                .rev()
                .filter(|e| e.to_stage == "production")
                .map(|e| e.version)
                .find(|v| Some(*v) != current.map(|c| c.version))
                .ok_or_else(|| {
                    anyhow!(
                        "{model} has had no other production version to roll back to; name one with --to VERSION"
                    )
                })?
        }
    };
    let Some(target_version) = versions.iter().find(|v| v.version == target) else {
        bail!("{model} has no version {target}: `vane models {model}` lists its versions");
    };
    // Naming the version in production runs the rollback command again: the way to put it
    // back in place after a rollback command failed, with the registry already right.
    let again = current.is_some_and(|c| c.version == target);
    let path = vane_deploy::model_path(target_version);
    match rollback_command(g, &store, model)? {
        Some(rollback) => {
            println!(
                "running the rollback command for {model} v{target} in {}: {}",
                rollback.cwd.display(),
                rollback.command
            );
            let mut env = rollback.env;
            env.extend(vane_deploy::model_env(model, target, &path, "rollback"));
            vane_deploy::shell(
                "rollback",
                &rollback.command,
                &env,
                None,
                Some(&rollback.cwd),
            )
            .map_err(|e| anyhow!("{e}; the registry is unchanged"))
            .context("rolling back")?;
        }
        None if again => bail!(
            "{model} v{target} is already in production, and no deploy task of {model} has a `rollback` command to put it in place again"
        ),
        None => println!(
            "no deploy task of {model} has a `rollback` command: put v{target} ({}) in place yourself; recording it",
            path.display()
        ),
    }
    if again {
        println!("{model} v{target} is in production and was put in place again");
        return Ok(ExitCode::SUCCESS);
    }
    store.set_stage(&StageChange {
        model,
        version: target,
        to_stage: "production",
        actor: &format!("user {by}"),
        run: None,
        reason: Some(&format!("rollback: {}", args.reason)),
        evidence: &json!({}),
    })?;
    println!(
        "{model} v{target} is back in production{} (by {by}: {})",
        current
            .map(|c| format!(", replacing v{}", c.version))
            .unwrap_or_default(),
        args.reason
    );
    Ok(ExitCode::SUCCESS)
}
