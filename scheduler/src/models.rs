//! `vane models`, `approve`, `reject`, `promote` and `rollback`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::cli::Global;

#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    pub(crate) name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ApproveArgs {
    pub(crate) run_id: i64,
}

#[derive(Debug, Args)]
pub(crate) struct RejectArgs {
    pub(crate) run_id: i64,
}

#[derive(Debug, Args)]
pub(crate) struct PromoteArgs {
    pub(crate) name: String,
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    pub(crate) name: String,
}

pub(crate) fn models(_g: &Global, _args: &ModelsArgs) -> Result<ExitCode> {
    bail!("not written yet")
}

pub(crate) fn approve(_g: &Global, _args: &ApproveArgs) -> Result<ExitCode> {
    bail!("not written yet")
}

pub(crate) fn reject(_g: &Global, _args: &RejectArgs) -> Result<ExitCode> {
    bail!("not written yet")
}

pub(crate) fn promote(_g: &Global, _args: &PromoteArgs) -> Result<ExitCode> {
    bail!("not written yet")
}

pub(crate) fn rollback(_g: &Global, _args: &RollbackArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
