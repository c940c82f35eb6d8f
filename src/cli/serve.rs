//! `faultline serve`: flags to a [`faultline::app::serve::ServeRequest`], SIGTERM and
//! SIGINT to a graceful shutdown, and the lines a person starting it reads.

use faultline::app::serve::{ServeRequest, DEFAULT_LISTEN};
use faultline::exit::ExitCode;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `faultline serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (IP:PORT; port 0 picks a free one).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// The store: a file (default: $XDG_DATA_HOME/faultline/store.db or ~/.local/share/faultline/store.db) or postgres://….
    #[arg(long, env = "FAULTLINE_STORE")]
    pub store: Option<String>,
    /// Check no token (allowed only on a loopback address).
    #[arg(long)]
    pub no_auth: bool,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Forward every stored indicator to this Prometheus remote-write URL
    /// (http(s)://host:port/api/v1/write).
    #[arg(long, env = "FAULTLINE_REMOTE_WRITE")]
    pub remote_write: Option<String>,
    /// A local kill switch file that engages this server too while it exists (`faultline
    /// kill --kill-switch PATH` or `touch` on this machine); `DELETE /v1/kill` removes
    /// it. The switch itself (`/v1/kill`) is kept in the store, shared by every server
    /// over it [default: none].
    #[arg(long, env = "FAULTLINE_KILL_SWITCH", value_name = "PATH")]
    pub kill_switch: Option<PathBuf>,
}

/// Run the command; returns the exit code.
pub async fn serve(args: ServeArgs) -> ExitCode {
    let req = ServeRequest {
        listen: Some(args.listen),
        store: args.store,
        no_auth: args.no_auth,
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key,
        remote_write: args.remote_write,
        kill_switch: args.kill_switch,
    };
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let no_auth = req.no_auth;
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("faultline serve: cannot watch for signals: {e}");
            return ExitCode::Failed;
        }
    };
    let ready = |addr: std::net::SocketAddr, store: &str, switch: &str| {
        // Written, not `println!`: a closed stdout is not a reason to panic.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "faultline serve: listening on {scheme}://{addr} (store {store})"
        );
        let _ = writeln!(
            out,
            "faultline serve: kill switch at {scheme}://{addr}/v1/kill, kept in {switch}"
        );
        if no_auth {
            let _ = writeln!(out, "faultline serve: no auth: every request is allowed");
        }
        let _ = out.flush();
    };
    match faultline::app::serve::serve(&req, ready, shutdown).await {
        Ok(()) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "faultline serve: stopped; the store is closed");
            ExitCode::Success
        }
        Err(e) => {
            eprintln!("faultline serve: {e}");
            e.exit_code()
        }
    }
}

/// Completes at the first SIGTERM or SIGINT (installed now, so a signal that comes
/// while the store opens is not lost).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
