//! `vane`: the command line and (later) the scheduler daemon. Thin by design: it parses
//! arguments, calls the crates, and prints.

mod agent;
mod alerts;
mod backfill;
mod builtin;
mod checks;
mod cli;
mod commands;
mod http;
mod lineage;
mod metrics;
mod models;
mod output;
mod status;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    restore_sigpipe();
    let matches = cli::Cli::command().get_matches();
    let mut cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // A task's own `vane exec-builtin` gets everything from its environment.
    if !matches!(
        cli.command,
        cli::Command::ExecBuiltin | cli::Command::AgentWatchdog
    ) {
        cli.global.discover(&matches);
    }
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            // A DAG file or config that does not validate: its diagnostics first, as a
            // compiler shows them, then what could not be done.
            if let Some(diagnostics) = error
                .downcast_ref::<vane_app::AppError>()
                .and_then(vane_app::AppError::diagnostics)
            {
                eprint!("{diagnostics}");
            }
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// `vane runs | head` should end quietly when `head` closes the pipe, as other command-line
/// tools do, instead of panicking on a failed write: restore the default SIGPIPE action that
/// the Rust runtime replaces with "ignore". Processes vane spawns inherit the default too.
#[allow(unsafe_code)]
fn restore_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called first thing in main, before any thread exists, and SIG_DFL installs no
    // handler code of ours.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
