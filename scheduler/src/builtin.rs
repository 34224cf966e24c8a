//! `vane exec-builtin`: the process of a `validate` or `deploy` task. The engine starts it
//! like any task (its own process group, log, timeout and crash recovery), with the attempt's
//! `VANE_*` environment; it reads the rest from the store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use vane_engine::TemplateVars;
use vane_store::Store;

fn var(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| {
        anyhow!(
            "${name} is not set: `vane exec-builtin` is started by vane for a task, not by hand"
        )
    })
}

pub(crate) fn exec_builtin() -> Result<ExitCode> {
    let db = var("VANE_DB")?;
    let state_dir = PathBuf::from(var("VANE_STATE_DIR")?);
    let run: vane_store::RunId = var("VANE_RUN_ID")?.parse().context("$VANE_RUN_ID")?;
    let task_id = var("VANE_TASK_ID")?;
    let attempt: u32 = var("VANE_ATTEMPT")?.parse().context("$VANE_ATTEMPT")?;
    let work = PathBuf::from(var("VANE_WORK")?);
    let metrics = std::env::var_os("VANE_METRICS").map(PathBuf::from);

    let store = vane_store::open(&db)?;
    let store: &dyn Store = &*store;
    let detail = store.run(run)?;
    let source = store.dag_source(detail.run.dag_version)?;
    let parsed = vane_dag::parse_dag_with(&source, &detail.run.dag_id, &vane_app::registry());
    let dag = parsed
        .dag
        .ok_or_else(|| anyhow!("the DAG version of run {run} no longer parses"))?;
    let Some(task) = dag.tasks.iter().find(|t| t.id == task_id) else {
        bail!("DAG `{}` has no task `{task_id}`", dag.id);
    };
    let params = dag.params_from_json(&detail.run.params);
    let cleared = detail
        .tasks
        .iter()
        .any(|t| t.task_id == task_id && t.retry_base > 0);
    let vars = TemplateVars::new(
        &dag,
        &params,
        detail.run.logical_date,
        &vane_engine::AttemptOf {
            run,
            task: &task_id,
            attempt,
            started_by: vane_engine::StartedBy::of(detail.run.trigger, cleared),
        },
        &work,
    );
    let render = |t: &vane_dag::Template| t.render_plain(|v| vars.lookup(v));
    let Some(builtin) = &task.builtin else {
        bail!("task `{task_id}` is not a validate or deploy task");
    };
    let passed = if let Some(spec) = builtin.spec::<vane_check::ValidateSpec>() {
        let failed = match vane_check::run_task(
            store,
            &vane_check::Job {
                dag_id: &dag.id,
                run,
                task_id: &task_id,
                attempt,
                dataset: PathBuf::from(render(&spec.dataset)),
                spec,
                metrics,
            },
        ) {
            Ok(failed) => failed,
            // A dataset that cannot be read is no verdict (a retry may find it), but what went
            // wrong belongs with the attempt, where `vane show` and `vane why` look for it.
            Err(e) => {
                write_reason(&e.to_string())?;
                return Err(e.into());
            }
        };
        if let Some(why) = &failed {
            write_reason(why)?;
        }
        failed.is_none()
    } else if let Some(spec) = builtin.spec::<vane_deploy::DeploySpec>() {
        // The run's owner names its content store, which may be S3 or a folder on its host.
        let content = match std::env::var("VANE_CONTENT_STORE") {
            Ok(url) => vane_engine::artifacts::ContentStore {
                objects: vane_objects::open(&url)
                    .map_err(|e| anyhow!("cannot open the content store {url}: {e}"))?,
                url,
                cache: state_dir.join("artifacts-cache"),
            },
            Err(_) => vane_engine::artifacts::ContentStore::local(&state_dir.join("artifacts"))
                .context("cannot open the content store")?,
        };
        let deployed = vane_deploy::run_task(
            store,
            &vane_deploy::Job {
                dag_id: &dag.id,
                run,
                task_id: &task_id,
                attempt,
                spec,
                render: &render,
                metrics,
                content: &content,
            },
        );
        match deployed {
            // Latest-only, or a failed candidate: the task ends skipped, saying why, and the
            // run goes on.
            Err(vane_deploy::Error::NotDeployed(why)) => {
                println!("vane: {why}");
                write_reason(&why)?;
                return Ok(ExitCode::from(vane_engine::SKIP_EXIT as u8));
            }
            // A rollout that could not be carried out (no candidate file, a crashed
            // evaluation) is no verdict: the attempt fails with the reason and is retried.
            Err(vane_deploy::Error::Rollout(why)) => {
                println!("vane: {why}");
                write_reason(&why)?;
                return Ok(ExitCode::FAILURE);
            }
            other => other?,
        }
    } else {
        bail!(
            "task `{task_id}` is a `{}` task, which this vane cannot run",
            builtin.kind()
        );
    };
    // A failed check or gate is a verdict: the engine fails the task for good, no retry.
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(vane_engine::VERDICT_EXIT as u8)
    })
}

/// Gives the attempt its reason (`$VANE_REASON`), which `vane run`, `vane show` and alerts
/// print in place of "failed on a verdict".
fn write_reason(why: &str) -> Result<()> {
    if let Some(path) = std::env::var_os("VANE_REASON") {
        std::fs::write(path, format!("{why}\n")).context("cannot write $VANE_REASON")?;
    }
    Ok(())
}
