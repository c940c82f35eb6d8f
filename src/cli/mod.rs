//! Command-line interface: clap types and one short file per subcommand, each mapping
//! its flags to a request of the library's composition root ([`faultline::app`]),
//! which resolves precedence (flag > experiment `runtime` > settings `runtime` >
//! default) and assembles the run. Exit codes come from [`faultline::exit::ExitCode`]
//! only.

mod console;
mod indicator;
mod kill;
mod report;
mod run;
mod runs;
mod schedule;
mod serve;
mod slo;
mod token;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};
use faultline::exit::ExitCode;
use std::path::PathBuf;

/// An observability-first chaos engineering runner for Chaos Toolkit experiments.
#[derive(Parser, Debug)]
#[command(name = "faultline", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Console format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human lines, like the Chaos Toolkit's.
    String,
    /// One JSON object per line.
    Json,
}

// Parsed once per process: the size of the largest variant (`run`'s flags) costs
// nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run an experiment (file path or http(s) URL).
    Run(run::RunArgs),
    /// Report every problem in an experiment at once.
    Validate(validate::ValidateArgs),
    /// SLO objectives in the store: sync, report, delete.
    Slo(slo::SloArgs),
    /// Indicators in the store: push.
    Indicator(indicator::IndicatorArgs),
    /// Serve the SLO store over HTTP (Reliably-compatible and native APIs).
    Serve(serve::ServeArgs),
    /// Manage the bearer tokens of `faultline serve`.
    Token(token::TokenArgs),
    /// Operate the kill switch: stop every run obeying it and refuse new ones.
    Kill(kill::KillArgs),
    /// The run history: list, show, flush the spool, scores, programme stats.
    Runs(runs::RunsArgs),
    /// Run experiments on cron schedules, inside business-hours windows (docs/schedule.md).
    Schedule(schedule::ScheduleArgs),
    /// The chaos runs that overlapped an incident (a time and a window), newest first.
    Correlate(runs::CorrelateArgs),
    /// A report on runs, from their journals or the run history: HTML (one
    /// self-contained file) or Markdown.
    Report(report::ReportArgs),
}

/// Options shared by the subcommands.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Settings file (default: $XDG_CONFIG_HOME/faultline/settings.yaml or ~/.config/faultline/settings.yaml).
    #[arg(long, global = true, env = "FAULTLINE_SETTINGS")]
    pub settings: Option<PathBuf>,
    /// Console format.
    #[arg(long, value_enum, default_value = "string", global = true)]
    pub log_format: LogFormat,
    /// Show debug lines (outputs, tolerance details).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// Never colour the console (also NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Seconds to wait for an experiment given as an http(s) URL [default: 30].
    #[arg(long, global = true, allow_negative_numbers = true)]
    pub fetch_timeout: Option<f64>,
}

/// The signals that ask faultline to stop: SIGINT, SIGTERM and SIGHUP (the SSH
/// session or terminal went away: by default it would kill faultline with no rollback
/// and no journal). Installed when made, not when first awaited: a child started
/// before the first wait may already have led someone to signal us, and the default
/// action would kill faultline outright.
pub(crate) struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers (`None` when the runtime refuses them).
    pub(crate) fn install() -> Option<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Some(StopSignals {
            int: signal(SignalKind::interrupt()).ok()?,
            term: signal(SignalKind::terminate()).ok()?,
            hup: signal(SignalKind::hangup()).ok()?,
        })
    }

    /// The next one received, by name.
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// Parse arguments and run; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::Success.code()
                }
                _ => ExitCode::InvalidInput.code(),
            };
        }
    };
    // The work is waiting on children and sockets: one thread drives it all, and
    // starts faster than a pool. A server answers many clients at once: a pool.
    let built = if matches!(cli.command, Command::Serve(_)) {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match built {
        Ok(r) => r,
        Err(e) => {
            eprintln!("faultline: cannot start the async runtime: {e}");
            return ExitCode::Failed.code();
        }
    };
    let code = match cli.command {
        Command::Run(args) => runtime.block_on(run::run(args)),
        Command::Validate(args) => runtime.block_on(validate::validate(args)),
        Command::Slo(args) => runtime.block_on(slo::slo(args)),
        Command::Indicator(args) => runtime.block_on(indicator::indicator(args)),
        Command::Serve(args) => runtime.block_on(serve::serve(args)),
        Command::Token(args) => runtime.block_on(token::token(args)),
        Command::Kill(args) => runtime.block_on(kill::kill(args)),
        Command::Runs(args) => runtime.block_on(runs::runs(args)),
        Command::Schedule(args) => runtime.block_on(schedule::schedule(args)),
        Command::Correlate(args) => runtime.block_on(runs::correlate(args)),
        Command::Report(args) => runtime.block_on(report::report(args)),
    };
    // Background tasks (a stuck pipe writer, say) must not delay the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code.code()
}
