//! `vane checks` and `vane mark-good`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::cli::Global;

#[derive(Debug, Args)]
pub(crate) struct ChecksArgs {
    pub(crate) dag_id: String,
}

#[derive(Debug, Args)]
pub(crate) struct MarkGoodArgs {
    pub(crate) run_id: i64,
}

pub(crate) fn checks(_g: &Global, _args: &ChecksArgs) -> Result<ExitCode> {
    bail!("not written yet")
}

pub(crate) fn mark_good(_g: &Global, _args: &MarkGoodArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
