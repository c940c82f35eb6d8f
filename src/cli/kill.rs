//! `faultline kill [--reason TEXT] | --release | --status`: the kill switch, on this
//! machine's file or on a `faultline serve` (`--server`). The work is
//! [`faultline::app::kill::kill`]; this file maps the flags and prints the outcome
//! (stdout; warnings and errors on stderr).
//!
//! Exit codes: 0 done (engaged, released, or `--status` found it off); 4 `--status`
//! found it engaged; 2 the file or the server failed; 3 a wrong flag or setting.

use faultline::app::kill::{KillAction, KillRequest};
use faultline::exit::ExitCode;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `faultline kill`.
#[derive(clap::Args, Debug)]
pub struct KillArgs {
    /// Why (shown by every run it stops, in their journal and trace).
    #[arg(long, conflicts_with_all = ["release", "status"])]
    pub reason: Option<String>,
    /// Release the switch: runs may start again.
    #[arg(long, conflicts_with = "status")]
    pub release: bool,
    /// Say whether it is engaged (exit 0: off, 4: engaged).
    #[arg(long)]
    pub status: bool,
    /// The switch file [env: FAULTLINE_KILL_SWITCH; settings: kill_switch; default:
    /// $XDG_RUNTIME_DIR/faultline/kill-switch and /tmp/faultline-<uid>/kill-switch].
    #[arg(long, value_name = "PATH", conflicts_with = "server")]
    pub kill_switch: Option<PathBuf>,
    /// Operate the switch of this `faultline serve` (http(s)://HOST:PORT) instead: it
    /// stops the runs attached to it.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The server's bearer token (any organisation's).
    #[arg(long, env = "FAULTLINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The settings file (it may name the switch file).
    #[arg(long, env = "FAULTLINE_SETTINGS")]
    pub settings: Option<PathBuf>,
}

/// Run the command; returns the exit code.
pub async fn kill(args: KillArgs) -> ExitCode {
    let action = if args.release {
        KillAction::Release
    } else if args.status {
        KillAction::Status
    } else {
        KillAction::Engage(args.reason)
    };
    let req = KillRequest {
        action,
        kill_switch: args.kill_switch,
        settings: args.settings,
        server: args.server,
        token: args.token,
    };
    match faultline::app::kill::kill(&req).await {
        Ok(report) => {
            {
                let mut err = std::io::stderr().lock();
                for w in &report.warnings {
                    let _ = writeln!(err, "faultline kill: warning: {w}");
                }
            }
            // Written, not `println!`: a closed stdout is not a reason to panic.
            let _ = writeln!(std::io::stdout().lock(), "{report}");
            report.exit_code()
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "faultline kill: {e}");
            ExitCode::for_kill(&e)
        }
    }
}
