//! `faultline run`: the flags, the console and the signals; the run itself is
//! assembled by the library's composition root ([`faultline::app::run`]).

use super::console::Console;
use super::Common;
use faultline::app::{CatalogRequest, Processes, RunRequest};
use faultline::event::Level;
use faultline::exit::ExitCode;
use faultline::run::{Dry, HypothesisStrategy, Interrupt, InterruptSource, RollbackStrategy};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Arguments of `faultline run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The experiment: a JSON or YAML file, or an http(s) URL. Several (files, globs,
    /// directories of *.json|*.yaml|*.yml) make a catalog, run in turn.
    #[arg(required = true, value_name = "EXPERIMENT")]
    pub experiments: Vec<String>,
    /// Where the journal is written (atomically) [default: ./journal.json]; for a
    /// catalog, the directory of the journals, one `<file stem>.json` each [default:
    /// ./journals/].
    #[arg(long)]
    pub journal_path: Option<PathBuf>,
    /// Write a JUnit XML report of the run(s) to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a report of the run(s) to this file, as `faultline report` makes it:
    /// Markdown when it ends in .md, else one self-contained HTML file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The report's trace links: a template with {trace_id} (and {run_id}) [default:
    /// the settings' tracing.trace_url].
    #[arg(
        long,
        env = "FAULTLINE_TRACE_URL",
        value_name = "TEMPLATE",
        requires = "report"
    )]
    pub trace_url: Option<String>,
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
    let experiments = match faultline::catalog::expand(&args.experiments) {
        Ok(e) => e,
        Err(problems) => {
            let console = Console::new(
                args.common.log_format,
                args.common.verbose,
                args.common.no_color,
                String::new(),
            );
            for p in problems {
                console.line(Level::Error, "input.invalid", &p);
            }
            return ExitCode::InvalidInput;
        }
    };
    let journal_path = args.journal_path.clone().unwrap_or_else(|| {
        PathBuf::from(if experiments.len() == 1 {
            "./journal.json"
        } else {
            "./journals"
        })
    });
    let c = &args.common;
    let template = RunRequest {
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
        ..RunRequest::new(String::new(), String::new(), journal_path.clone())
    };
    let current = Arc::new(Mutex::new(template.interrupt.clone()));
    let (format, verbose, no_color) = (c.log_format, c.verbose, c.no_color);
    let first = Arc::new(Console::new(format, verbose, no_color, String::new()));
    let signals = spawn_signal_handler(current.clone(), template.processes.clone(), first);
    // The report's trace links are checked before anything runs.
    let report = match &args.report {
        None => None,
        Some(path) => match faultline::app::report::trace_url(
            args.trace_url.as_deref(),
            c.settings.as_deref(),
        ) {
            Ok(trace_url) => Some(faultline::app::catalog::ReportTarget {
                path: path.clone(),
                format: super::report::format_for(path),
                trace_url,
            }),
            Err(e) => {
                let console = Console::new(format, verbose, no_color, String::new());
                for p in e {
                    console.line(Level::Error, "input.invalid", &p);
                }
                signals.abort();
                return ExitCode::InvalidInput;
            }
        },
    };
    let request = CatalogRequest {
        template,
        experiments,
        journal_path,
        junit: args.junit,
        report,
        current,
    };
    let code = faultline::app::run_catalog(request, |run_id| {
        Arc::new(Console::new(format, verbose, no_color, run_id.to_string()))
            as Arc<dyn faultline::app::Narrator>
    })
    .await;
    signals.abort();
    code
}

/// First SIGINT/SIGTERM/SIGHUP: interrupt the run (rollbacks still play, the journal
/// is written). Second: kill every child's process tree and exit at once.
fn spawn_signal_handler(
    current: Arc<Mutex<Interrupt>>,
    processes: Processes,
    console: Arc<Console>,
) -> tokio::task::JoinHandle<()> {
    // Installed now, before the first child starts.
    let signals = super::StopSignals::install();
    tokio::spawn(async move {
        let Some(mut signals) = signals else {
            return;
        };
        let mut count = 0;
        loop {
            let name = signals.next().await;
            count += 1;
            let interrupt = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
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
