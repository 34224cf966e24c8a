//! `vane serve` and `vane scheduler --http`: binds the server and hands it the application
//! layer's API, which answers from the same functions that print `--json`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::Global;

#[derive(Debug, Clone, Args)]
pub(crate) struct HttpArgs {
    /// Token file for the API: actions need `Authorization: Bearer TOKEN` [env: VANE_API_TOKEN].
    /// Without one on a loopback address, vane makes a token for this run and prints the
    /// web UI's link with it.
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to serve the UI, the API and /metrics on; non-loopback addresses need a token.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) http: SocketAddr,
    #[command(flatten)]
    pub(crate) auth: HttpArgs,
}

/// `vane serve`: the API alone, in the foreground.
pub(crate) fn serve(g: &Global, args: &ServeArgs) -> Result<ExitCode> {
    crate::commands::init_tracing();
    let server = bind(args.http, &args.auth)?;
    server.serve(api(g)?);
    Ok(ExitCode::SUCCESS)
}

/// Starts the API on threads of its own, beside the scheduler's loop.
pub(crate) fn spawn(g: &Global, addr: SocketAddr, auth: &HttpArgs) -> Result<()> {
    let server = bind(addr, auth)?;
    let api = api(g)?;
    std::thread::spawn(move || server.serve(api));
    Ok(())
}

fn bind(addr: SocketAddr, auth: &HttpArgs) -> Result<vane_http::Server> {
    let token = match &auth.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("VANE_API_TOKEN").ok(),
    };
    // On loopback without a token, as Jupyter does: a token made for this run of the server,
    // handed to the person who started it in the link below. The page's buttons work from
    // that link, and other users of the machine, who can reach loopback too, cannot act.
    let made = token.is_none() && addr.ip().is_loopback();
    let token = if made { Some(one_time_token()?) } else { token };
    let server = vane_http::Server::bind(addr, token.clone())?;
    // Printed so that a script (or a test) that asked for port 0 learns the port.
    eprintln!("vane: serving the API on http://{}", server.local_addr());
    match token.filter(|_| made) {
        Some(token) => {
            eprintln!(
                "vane: web UI at http://{}/#token={token}",
                server.local_addr()
            );
            eprintln!(
                "vane: that link carries a token made for this run of the server: the page's actions need it (so other users of this machine cannot act), reads do not; scripts send it as `Authorization: Bearer {token}`"
            );
        }
        None => eprintln!("vane: web UI at http://{}/", server.local_addr()),
    }
    Ok(server)
}

/// 128 random bits from the kernel, in hex.
fn one_time_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom to make the server's token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn api(g: &Global) -> Result<Arc<dyn vane_http::Api>> {
    // Fail now, not on the first request, when the database cannot be opened.
    Ok(Arc::new(vane_app::HttpApi::new(crate::commands::app(g))?))
}
