//! `faultline run`: the flags, the console and the signals; the run itself is
//! assembled by the library's composition root ([`faultline::app::run`]).

use super::console::Console;
use super::Common;
use faultline::app::{Processes, RunRequest};
use faultline::event::Level;
use faultline::exit::ExitCode;
use faultline::run::{Dry, HypothesisStrategy, Interrupt, InterruptSource, RollbackStrategy};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `faultline run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The experiment: a JSON or YAML file, or an http(s) URL.
    pub experiment: String,
    /// Where the journal is written (atomically).
    #[arg(long, default_value = "./journal.json")]
    pub journal_path: PathBuf,
    /// Do not execute these activities (or skip pauses).
    #[arg(long, value_parser = names::<Dry>(Dry::NAMES))]
    pub dry: Option<Dry>,
    /// Skip the pre-flight check of this machine (executables on PATH, python modules,
    /// URLs built by substitution); the experiment's structure is always checked.
    #[arg(long)]
    pub no_validation: bool,
    /// When rollbacks are played [default: always].
    #[arg(long, value_parser = names::<RollbackStrategy>(RollbackStrategy::NAMES))]
    pub rollback_strategy: Option<RollbackStrategy>,
    /// When the steady-state hypothesis is checked [default: default].
    #[arg(long, value_parser = names::<HypothesisStrategy>(HypothesisStrategy::NAMES))]
    pub hypothesis_strategy: Option<HypothesisStrategy>,
    /// Seconds between two checks of a continuous hypothesis [default: 1.0].
    #[arg(long, allow_negative_numbers = true)]
    pub hypothesis_frequency: Option<f64>,
    /// Stop the method as soon as a continuous check deviates.
    #[arg(long)]
    pub fail_fast: bool,
    /// Override a configuration key: KEY=VALUE or KEY:TYPE=VALUE (str, int, float, bool, json).
    #[arg(long = "var", value_name = "KEY[:TYPE]=VALUE")]
    pub vars: Vec<String>,
    /// A .json/.yaml file with `configuration`/`secrets`, or a .env file.
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// A JSON/YAML file of global controls (the settings file's `controls:` shape, or a
    /// list of `{name, provider}`); repeatable.
    #[arg(long = "control-file", value_name = "FILE")]
    pub control_files: Vec<PathBuf>,
    /// Timeout in seconds of activities that declare none [default: 300].
    #[arg(long, allow_negative_numbers = true)]
    pub activity_timeout: Option<f64>,
    /// The SLO store of the run's SLO activities: a file path or a `faultline serve`
    /// URL [env: FAULTLINE_STORE; default: the embedded store's file]. Opened only
    /// when an activity needs it.
    #[arg(long, value_name = "PATH|URL")]
    pub store: Option<String>,
    /// The store's organisation [env: FAULTLINE_ORG; default: default].
    #[arg(long)]
    pub org: Option<String>,
    /// The bearer token of a remote store [env: FAULTLINE_TOKEN].
    #[arg(long)]
    pub token: Option<String>,
    /// The kill switch file this run obeys: refused while it exists, interrupted when
    /// it appears [env: FAULTLINE_KILL_SWITCH; settings: kill_switch; default:
    /// $XDG_RUNTIME_DIR/faultline/kill-switch and /tmp/faultline-<uid>/kill-switch].
    #[arg(long, value_name = "PATH")]
    pub kill_switch: Option<PathBuf>,
    /// A target label of this run (`service=checkout`), over the experiment's tags
    /// and configuration; repeatable. Run history, correlation, run metrics and
    /// annotations carry the labels.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not record this run in the run history of its store.
    #[arg(long)]
    pub no_record: bool,
    #[command(flatten)]
    pub common: Common,
}

/// One of `names`, typed: `--help` lists the allowed values, a typo names them.
fn names<T>(names: &'static [&'static str]) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(names).try_map(|s| s.parse::<T>())
}

/// Run the command; returns the exit code.
pub async fn run(args: RunArgs) -> ExitCode {
    let run_id = faultline::app::new_run_id();
    let c = &args.common;
    let console = Arc::new(Console::new(
        c.log_format,
        c.verbose,
        c.no_color,
        run_id.clone(),
    ));
    let request = RunRequest {
        settings: c.settings.clone(),
        dry: args.dry,
        no_validation: args.no_validation,
        rollback_strategy: args.rollback_strategy,
        hypothesis_strategy: args.hypothesis_strategy,
        hypothesis_frequency: args.hypothesis_frequency,
        fail_fast: args.fail_fast,
        vars: args.vars,
        var_files: args.var_files,
        control_files: args.control_files,
        activity_timeout: args.activity_timeout,
        fetch_timeout: c.fetch_timeout,
        store: args.store,
        org: args.org,
        token: args.token,
        kill_switch: args.kill_switch,
        labels: args.labels,
        record: !args.no_record,
        ..RunRequest::new(run_id, args.experiment, args.journal_path)
    };
    let signals = spawn_signal_handler(
        request.interrupt.clone(),
        request.processes.clone(),
        console.clone(),
    );
    let end = faultline::app::run(request, console).await;
    signals.abort();
    end.code
}

/// First SIGINT/SIGTERM/SIGHUP: interrupt the run (rollbacks still play, the journal
/// is written). Second: kill every child's process tree and exit at once.
fn spawn_signal_handler(
    interrupt: Interrupt,
    processes: Processes,
    console: Arc<Console>,
) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Installed now, not when the task first runs: that is only at the run's first
    // wait, and a child started before it (the first activity) may already have led
    // someone to signal us; the default action would kill faultline outright.
    // SIGHUP (the SSH session or terminal went away) is a request to stop like
    // SIGTERM: by default it would kill faultline with no rollback and no journal.
    let signals = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = signals else {
            return;
        };
        let mut count = 0;
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
            };
            count += 1;
            if count == 1 && interrupt.in_rollbacks() {
                console.line(
                    Level::Warning,
                    "experiment.signal",
                    &format!("Received {name} during rollbacks: letting them finish (send it again to exit at once)"),
                );
                interrupt.trigger_from(
                    InterruptSource::Signal,
                    format!("received {name} during rollbacks"),
                );
            } else if count == 1 {
                console.line(
                    Level::Warning,
                    "experiment.signal",
                    &format!("Received {name}: stopping the running activity, then rollbacks and the journal (send it again to exit at once)"),
                );
                interrupt.trigger_from(InterruptSource::Signal, format!("received {name}"));
            } else {
                faultline::app::abandon(&processes);
                console.line(
                    Level::Critical,
                    "experiment.signal",
                    &format!("Received {name} again: exiting now, without rollbacks or journal"),
                );
                std::process::exit(ExitCode::Failed.code());
            }
        }
    })
}
