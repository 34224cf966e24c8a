//! `vane models`, `approve`, `reject`, `promote` and `rollback`.

use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;
use vane_app::models::{Decision, decide, models_view, registry, waiting};
use vane_store::ModelVersion;

use crate::cli::{Global, JsonFlag};
use crate::commands::{app, open_store};
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
    pub(crate) run_id: vane_store::RunId,
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
    pub(crate) run_id: vane_store::RunId,
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
    /// The version to move: `3`, or `v3` as `vane models` lists it.
    #[arg(value_parser = model_version)]
    pub(crate) version: i64,
    /// The stage to put it in. `production` first puts the version in place with the model's
    /// `rollback` command, then archives the version that was there.
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
    /// The version to put back, `3` or `v3` [default: the one in production before the
    /// current one; when there is none, as for a model's first version, the deploy task's
    /// `fallback`].
    #[arg(long, value_parser = model_version)]
    pub(crate) to: Option<i64>,
    /// Why; recorded in the ledger.
    #[arg(long)]
    pub(crate) reason: String,
    /// Who [default: $USER].
    #[arg(long)]
    pub(crate) by: Option<String>,
}

/// A version as a person copies it from `vane models` (`v3`) or types it (`3`).
fn model_version(text: &str) -> Result<i64, String> {
    let digits = text.strip_prefix(['v', 'V']).unwrap_or(text);
    match digits.parse::<i64>() {
        Ok(version) if version > 0 => Ok(version),
        _ => Err(format!(
            "`{text}` is not a model version: write its number, as `vane models NAME` lists them (`3` or `v3`)"
        )),
    }
}

fn who(by: Option<&String>) -> String {
    vane_app::who(by.map(String::as_str))
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

fn parse_at(text: &str) -> Result<DateTime<Utc>, vane_app::AppError> {
    vane_dag::parse_when(text, chrono_tz::UTC, true).map_err(|e| {
        vane_app::AppError::Invalid(format!(
            "--at `{text}`: {e}; write a date (2026-11-23) or an RFC 3339 time"
        ))
    })
}

pub(crate) fn models(g: &Global, args: &ModelsArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let name = args.name.as_deref();
    if let Some(at) = &args.at {
        let at = parse_at(at)?;
        let answers = vane_app::models::production_at(&*store, name, at)?;
        if args.json.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::to_value(&answers)?)?
            );
        } else {
            for a in answers {
                let m = &a.model;
                match a.production {
                    Some(v) => println!("{m}: v{v} was in production at {}", time(Some(at))),
                    None => println!("{m}: nothing was in production at {}", time(Some(at))),
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (versions, ledger) = registry(&*store, name)?;
    let mut names: Vec<&str> = versions.iter().map(|v| v.model.as_str()).collect();
    names.dedup();
    if args.json.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&models_view(&*store, name)?)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let waiting = waiting(&*store, name)?;
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
    // A stage left waiting by a run that ended cannot be approved; say so until a rollback
    // closes it, because its stage command may still serve the candidate.
    for (s, state) in vane_app::models::stranded(&*store, name)? {
        let production = versions
            .iter()
            .find(|v| v.model == s.model && v.stage == "production");
        let fix = production.map_or_else(String::new, |p| {
            format!(
                "; `vane rollback {} --to {} --reason TEXT` puts production back in place",
                s.model, p.version
            )
        });
        println!(
            "\nrun {} ({} v{}) is {state}: its stage `{}` waited for an answer that can no longer come, and its command may still serve v{}{fix}",
            s.run_id, s.model, s.version, s.stage, s.version
        );
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

pub(crate) fn approve(g: &Global, args: &ApproveArgs) -> Result<ExitCode> {
    let by = who(args.by.as_ref());
    let store = open_store(g)?;
    let decided = decide(
        &*store,
        args.run_id,
        args.stage.as_deref(),
        Decision::Approve,
        &by,
        None,
    )?;
    for s in decided {
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
        &*open_store(g)?,
        args.run_id,
        args.stage.as_deref(),
        Decision::Reject,
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
    if args.stage == "production" {
        let plan = vane_app::models::plan_promotion(&app(g), &*store, &args.name, args.version)?;
        say_rollback_command(&plan);
        plan.run_command()?;
        vane_app::models::close_stranded(
            &*store,
            &args.name,
            &format!(
                "the run ended before an answer; v{} put in production by `vane promote` ({by}: {})",
                args.version, args.reason
            ),
        )?;
    }
    vane_app::models::promote(
        &*store,
        &args.name,
        args.version,
        &args.stage,
        &args.reason,
        &by,
    )?;
    println!(
        "{} v{} is now in `{}` (by {by}: {})",
        args.name, args.version, args.stage, args.reason
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn rollback(g: &Global, args: &RollbackArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let by = who(args.by.as_ref());
    let model = args.name.as_str();
    let plan = vane_app::models::plan_rollback(&app(g), &*store, model, args.to)?;
    let (target, again) = (plan.target, plan.again);
    say_rollback_command(&plan);
    plan.run_command()?;
    if again {
        plan.record(&*store, &args.reason, &by)?;
        println!("{model} v{target} is in production and was put in place again");
        return Ok(ExitCode::SUCCESS);
    }
    if plan.fallback {
        plan.record(&*store, &args.reason, &by)?;
        println!(
            "the fallback model {} is in place, so no version of {model} is in production{} (by {by}: {})",
            plan.path.display(),
            plan.current
                .map(|c| format!(
                    "; v{c}, which it replaces, is now `failed`: no automatic rollout serves it again"
                ))
                .unwrap_or_default(),
            args.reason
        );
        return Ok(ExitCode::SUCCESS);
    }
    // `--to` may name a version that never served (one that failed its canary): saying it is
    // "back" would tell the person on call it is known good.
    let served = store
        .ledger(Some(model))?
        .iter()
        .any(|e| e.version == target && e.to_stage == "production");
    let stage = store
        .model_versions(Some(model))?
        .into_iter()
        .find(|v| v.version == target)
        .map(|v| v.stage);
    plan.record(&*store, &args.reason, &by)?;
    let now = if served {
        "is back in production".to_owned()
    } else {
        format!(
            "is in production for the first time: it had never served there (it was `{}`)",
            stage.as_deref().unwrap_or("registered")
        )
    };
    println!(
        "{model} v{target} {now}{} (by {by}: {})",
        plan.current
            .map(|c| format!(
                ", replacing v{c}, now `failed`: no automatic rollout serves it again"
            ))
            .unwrap_or_default(),
        args.reason
    );
    Ok(ExitCode::SUCCESS)
}

/// What is about to put a version in production, said before the command runs.
fn say_rollback_command(plan: &vane_app::models::RollbackPlan) {
    let (model, target) = (&plan.model, plan.target);
    let what = if plan.fallback {
        format!("the fallback model {}", plan.path.display())
    } else {
        format!("{model} v{target}")
    };
    match &plan.command {
        Some(rollback) => println!(
            "running the rollback command for {what} in {}: {}",
            rollback.cwd.display(),
            rollback.command
        ),
        None => println!(
            "no deploy task of {model} has a `rollback` command: put v{target} ({}) in place yourself; recording it",
            plan.path.display()
        ),
    }
}
