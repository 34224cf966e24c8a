//! `vane artifacts`, `vane lineage` and `vane diff`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::cli::Global;

#[derive(Debug, Args)]
pub(crate) struct ArtifactsArgs {
    pub(crate) name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LineageArgs {
    pub(crate) artifact: String,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    pub(crate) run_a: i64,
    pub(crate) run_b: i64,
}

pub(crate) fn artifacts(_g: &Global, _args: &ArtifactsArgs) -> Result<ExitCode> {
    bail!("not written yet")
}

pub(crate) fn lineage(_g: &Global, _args: &LineageArgs) -> Result<ExitCode> {
    bail!("not written yet")
}

pub(crate) fn diff(_g: &Global, _args: &DiffArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
