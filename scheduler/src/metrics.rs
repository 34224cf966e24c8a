//! `vane metrics`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::cli::Global;

#[derive(Debug, Args)]
pub(crate) struct MetricsArgs {
    pub(crate) dag_id: String,
}

pub(crate) fn metrics(_g: &Global, _args: &MetricsArgs) -> Result<ExitCode> {
    bail!("not written yet")
}
