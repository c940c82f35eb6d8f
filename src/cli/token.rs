//! `faultline token create --org NAME`: a bearer token for `faultline serve`, printed
//! once (the store keeps only its hash).

use faultline::exit::ExitCode;
use std::io::Write;

/// Arguments of `faultline token`.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// What to do with tokens.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token for an organisation and print it (once).
    Create {
        /// The organisation (1 to 64 letters, digits, '-', '_' or '.'; lower-cased).
        #[arg(long)]
        org: String,
        /// The store: a file (default: $XDG_DATA_HOME/faultline/store.db or ~/.local/share/faultline/store.db) or postgres://….
        #[arg(long, env = "FAULTLINE_STORE")]
        store: Option<String>,
    },
}

/// Run the command; returns the exit code.
pub async fn token(args: TokenArgs) -> ExitCode {
    let TokenCommand::Create { org, store } = args.command;
    match faultline::app::serve::create_token(&org, store.as_deref()).await {
        Ok(token) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{token}");
            ExitCode::Success
        }
        Err(e) => {
            eprintln!("faultline token create: {e}");
            e.exit_code()
        }
    }
}
