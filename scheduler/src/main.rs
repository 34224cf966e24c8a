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
mod why;

use std::process::ExitCode;

use clap::FromArgMatches;

fn main() -> ExitCode {
    restore_sigpipe();
    let matches = cli::command().get_matches();
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
    commands::set_color(cli.global.color.stderr());
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
            eprintln!("error: {}", causes(&error));
            ExitCode::from(exit_code(&error))
        }
    }
}

/// The error and each cause under it, `: `-joined, leaving out a cause whose text the line
/// already holds: many errors name their cause in their own message ("cannot read vane.toml:
/// stream did not contain valid UTF-8") and also give it as their source, which `{:#}` would
/// print a second time.
fn causes(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

/// What an error exits with, so that a script can tell a typo from a missing run (see
/// "Exit codes" in the README): 2 is clap's, for a command line it cannot parse.
fn exit_code(error: &anyhow::Error) -> u8 {
    use vane_app::AppError;
    use vane_store::StoreError;
    let store = |e: &StoreError| match e {
        StoreError::NotFound(_) => 3,
        StoreError::RunExists { .. }
        | StoreError::TickDecided { .. }
        | StoreError::Fenced { .. } => 5,
        _ => 6,
    };
    if let Some(e) = error.downcast_ref::<AppError>() {
        return match e {
            AppError::NotFound(_) => 3,
            AppError::Invalid(_)
            | AppError::ParamsUnfit(_)
            | AppError::InvalidDag { .. }
            | AppError::Config { .. } => 4,
            AppError::Conflict(_) => 5,
            AppError::Store(s) => store(s),
            AppError::Io { .. } | AppError::Storage(_) => 6,
            _ => 1,
        };
    }
    if let Some(e) = error.downcast_ref::<StoreError>() {
        return store(e);
    }
    match error.downcast_ref::<vane_http::ServerError>() {
        Some(vane_http::ServerError::TokenRequired { .. }) => 4,
        Some(vane_http::ServerError::Bind { .. }) => 6,
        // A file or folder vane could not read, write or create (a token file, the agent's
        // spool, `man --dir`) reaches here as an I/O error under the command's own words.
        _ if error
            .chain()
            .any(|cause| cause.downcast_ref::<std::io::Error>().is_some()) =>
        {
            6
        }
        _ => 1,
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
