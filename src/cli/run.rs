//! `faultline run`: load, validate, resolve, run, write the journal, exit.

use super::console::Console;
use super::Common;
use faultline::control::Control as _;
use faultline::event::Level;
use faultline::exit::ExitCode;
use faultline::experiment::config::{parse_var, resolve, Overrides};
use faultline::experiment::{load_with, locate::locate_all, parse, Problem};
use faultline::run::{Dry, HypothesisStrategy, Interrupt, RollbackStrategy, RunOptions, Runner};
use faultline::telemetry::{Telemetry, TelemetryConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

/// A random run id (UUID v4).
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn report(console: &Console, problems: &[Problem]) {
    for p in problems {
        console.line(Level::Error, "input.invalid", &p.to_string());
    }
}

/// Run the command; returns the exit code.
pub async fn run(args: RunArgs) -> ExitCode {
    let run_id = new_run_id();
    let c = &args.common;
    let console = Arc::new(Console::new(
        c.log_format,
        c.verbose,
        c.no_color,
        run_id.clone(),
    ));

    let settings = match faultline::settings::load(c.settings.as_deref()) {
        Ok(s) => s,
        Err(p) => {
            report(&console, &p);
            return ExitCode::InvalidInput;
        }
    };
    let mut overrides = Overrides::default();
    for f in &args.var_files {
        if let Err(p) = overrides.add_file(f) {
            report(&console, &[p]);
            return ExitCode::InvalidInput;
        }
    }
    for v in &args.vars {
        match parse_var(v) {
            Ok((k, v)) => {
                overrides.configuration.insert(k, v);
            }
            Err(e) => {
                console.line(Level::Error, "input.invalid", &e);
                return ExitCode::InvalidInput;
            }
        }
    }

    let globals = match super::controls::collect_globals(&settings, &args.control_files) {
        Ok(g) => g,
        Err(p) => {
            report(&console, &[p]);
            return ExitCode::InvalidInput;
        }
    };
    let mut built = super::controls::build_globals(&globals);
    let globals_count = built.controls.len();
    for c in &built.controls {
        c.before_loading(&args.experiment);
    }
    let fetch = match c.fetch_options(&settings) {
        Ok(f) => f,
        Err(e) => {
            console.line(Level::Error, "input.invalid", &e);
            return ExitCode::InvalidInput;
        }
    };
    let doc = match load_with(&args.experiment, &fetch).await {
        Ok(d) => d,
        Err(e) => {
            console.line(Level::Error, "input.invalid", &e.to_string());
            return ExitCode::InvalidInput;
        }
    };
    console.line(
        Level::Info,
        "experiment.validating",
        "Validating the experiment's syntax",
    );
    for w in &doc.warnings {
        console.line(
            Level::Warning,
            "input.duplicate_key",
            &format!("{}: {w}", doc.source),
        );
    }
    let experiment = match parse(&doc.value) {
        Ok(e) => e,
        Err(mut problems) => {
            locate_all(&mut problems, &doc.text, doc.format);
            console.line(
                Level::Critical,
                "input.invalid",
                &format!(
                    "{}: the experiment is invalid ({} problem(s)):",
                    doc.source,
                    problems.len()
                ),
            );
            report(&console, &problems);
            return ExitCode::InvalidInput;
        }
    };
    console.line(Level::Info, "experiment.valid", "Experiment looks valid");
    for c in &built.controls[..globals_count] {
        c.after_loading(&doc.value);
    }
    super::controls::add_experiment(&mut built, &experiment);
    for w in &built.warnings {
        console.line(Level::Warning, "control.unsupported", w);
    }
    if !built.problems.is_empty() {
        locate_all(&mut built.problems, &doc.text, doc.format);
        report(&console, &built.problems);
        return ExitCode::InvalidInput;
    }
    for key in overrides.configuration.keys() {
        if !experiment.declares_config(key) {
            console.line(
                Level::Warning,
                "input.ignored",
                &format!("configuration '{key}' is not declared by the experiment: the value given with --var/--var-file is ignored"),
            );
        }
    }
    let env_overlay = overrides.env.clone();
    let env = move |k: &str| {
        env_overlay
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(k).ok())
    };
    let resolved = match resolve(&experiment, &overrides, &env) {
        Ok(r) => r,
        Err(mut problems) => {
            locate_all(&mut problems, &doc.text, doc.format);
            report(&console, &problems);
            return ExitCode::InvalidInput;
        }
    };

    if !args.no_validation {
        let problems = faultline::run::preflight::check(
            &experiment,
            &resolved.configuration,
            &resolved.secrets,
        )
        .await;
        if !problems.is_empty() {
            let redactor = faultline::redact::Redactor::new(
                faultline::experiment::config::secret_values(&resolved.secrets),
            );
            let mut problems = problems;
            locate_all(&mut problems, &doc.text, doc.format);
            console.line(
                Level::Critical,
                "input.invalid",
                &format!(
                    "{}: this machine cannot run the experiment as written ({} problem(s)):",
                    doc.source,
                    problems.len()
                ),
            );
            for p in &problems {
                console.line(
                    Level::Error,
                    "input.invalid",
                    &redactor.text(&p.to_string()),
                );
            }
            return ExitCode::InvalidInput;
        }
    }
    let rt = &experiment.runtime;
    let srt = &settings.runtime;
    let defaults = RunOptions::default();
    // Each value is checked where it was written, so the message names its source.
    let checked = |what: &str, v: f64| {
        faultline::duration::positive_seconds(v).map_err(|e| {
            console.line(
                Level::Error,
                "input.invalid",
                &format!("{what}: {e} ({})", faultline::duration::HINT),
            );
            ExitCode::InvalidInput
        })
    };
    let frequency = match (
        args.hypothesis_frequency,
        rt.hypothesis_frequency,
        srt.hypothesis_frequency,
    ) {
        (Some(f), _, _) => checked("--hypothesis-frequency", f),
        (None, Some(f), _) => checked("the experiment's runtime.hypothesis.frequency", f),
        (None, None, Some(f)) => checked("the settings' runtime.hypothesis.frequency", f),
        (None, None, None) => Ok(defaults.hypothesis_frequency),
    };
    let activity_timeout = match (args.activity_timeout, settings.activity_timeout) {
        (Some(t), _) => checked("--activity-timeout", t),
        (None, Some(t)) => checked("the settings' activity_timeout", t),
        (None, None) => Ok(defaults.activity_timeout),
    };
    let (frequency, activity_timeout) = match (frequency, activity_timeout) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let options = RunOptions {
        hypothesis_strategy: args
            .hypothesis_strategy
            .or(rt.hypothesis_strategy)
            .or(srt.hypothesis_strategy)
            .unwrap_or(defaults.hypothesis_strategy),
        hypothesis_frequency: frequency,
        fail_fast: args.fail_fast || rt.fail_fast.or(srt.fail_fast).unwrap_or(false),
        rollback_strategy: args
            .rollback_strategy
            .or(rt.rollback_strategy)
            .or(srt.rollback_strategy)
            .unwrap_or(defaults.rollback_strategy),
        dry: args.dry,
        activity_timeout,
        output_limit: settings.output_limit.unwrap_or(defaults.output_limit),
    };

    let interrupt = Interrupt::new();
    let signals = spawn_signal_handler(interrupt.clone(), console.clone());
    console.line(
        Level::Info,
        "experiment.run_id",
        &format!("Run id: {run_id}"),
    );
    // Telemetry must never hurt the run: a setup problem is a warning, and tracing is
    // off for this run.
    let mut tcfg = TelemetryConfig::new(run_id.clone(), args.journal_path.clone());
    let ts = &settings.tracing;
    tcfg.exporter = ts.exporter.clone();
    tcfg.endpoint = ts.endpoint.clone();
    tcfg.protocol = ts.protocol.clone();
    tcfg.headers = ts
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // The settings file checked both (`settings::load`); telemetry never stops a run.
    tcfg.export_timeout = ts
        .timeout
        .and_then(|t| faultline::duration::positive_seconds(t).ok());
    tcfg.service_name = ts.service_name.clone();
    tcfg.redactor = faultline::redact::Redactor::new(faultline::experiment::config::secret_values(
        &resolved.secrets,
    ));
    if let Some(l) = ts
        .shutdown_limit
        .and_then(|l| faultline::duration::positive_seconds(l).ok())
    {
        tcfg.shutdown_limit = l;
    }
    let telemetry = match Telemetry::init(tcfg, &env) {
        Ok(t) => t,
        Err(e) => {
            console.line(
                Level::Warning,
                "telemetry.disabled",
                &format!("tracing is off for this run: {e}"),
            );
            Telemetry::disabled()
        }
    };
    for w in telemetry.warnings() {
        console.line(Level::Warning, "telemetry.warning", w);
    }
    console.line(
        Level::Info,
        "telemetry.destination",
        &format!("Spans go to {}", telemetry.destination()),
    );
    let sink_plan = match super::sinks::plan(&settings, &built.humio, &resolved, &env) {
        Ok(p) => p,
        Err(problems) => {
            report(&console, &problems);
            return ExitCode::InvalidInput;
        }
    };
    for w in &sink_plan.warnings {
        console.line(Level::Warning, "sink.disabled", w);
    }
    let sinks = if sink_plan.configs.is_empty() {
        None
    } else {
        match faultline::sink::Sinks::from_config_with_env(&sink_plan.configs, &env) {
            Ok(s) => {
                for w in s.warnings() {
                    console.line(Level::Warning, "sink.warning", w);
                }
                Some(s)
            }
            Err(e) => {
                console.line(Level::Error, "input.invalid", &format!("log sinks: {e}"));
                return ExitCode::InvalidInput;
            }
        }
    };
    let built_metrics = built.metrics.clone();
    let runner = Runner {
        experiment,
        options,
        resolved,
        controls: {
            let mut all: Vec<Box<dyn faultline::control::Control>> =
                vec![Box::new(console.clone())];
            if let Some(s) = &sinks {
                all.push(Box::new(faultline::control::logs::LogSinks::new(
                    s.emitter(),
                )));
            }
            all.extend(built.controls);
            Arc::new(all)
        },
        interrupt,
        run_id: run_id.clone(),
        env: overrides.env,
        tracer: Some(telemetry.tracer()),
        trace_parent: telemetry.parent_context(),
        safeguards: std::mem::take(&mut built.safeguards),
    };
    let outcome = runner.run().await;
    // Telemetry and sinks finish together, within one shared limit.
    let limit = telemetry.shutdown_limit();
    let (report, sink_reports) = tokio::join!(telemetry.shutdown(), async {
        match sinks {
            // The limit is the whole budget: leave the sinks' own slack inside it.
            Some(s) => {
                s.shutdown(limit.saturating_sub(Duration::from_millis(150)))
                    .await
            }
            None => Vec::new(),
        }
    });
    for m in &built_metrics {
        for e in m.errors() {
            console.line(
                Level::Warning,
                "metrics.push_failed",
                &format!("Prometheus run metrics: {e}"),
            );
        }
    }
    for r in &sink_reports {
        console.line(
            if r.dropped == 0 {
                Level::Info
            } else {
                Level::Warning
            },
            "sink.report",
            &r.to_string(),
        );
    }
    console.line(
        if report.complete() {
            Level::Info
        } else {
            Level::Warning
        },
        "telemetry.report",
        &report.to_string(),
    );
    let code = ExitCode::for_run(outcome.status, outcome.deviated);
    let fallback = std::env::temp_dir().join(format!("faultline-journal-{run_id}.json"));
    let written = faultline::run::journal::finish(&args.journal_path, &outcome.record, &fallback);
    match written.problem(&args.journal_path) {
        None => console.line(
            Level::Info,
            "journal.written",
            &format!("Journal written to {}", args.journal_path.display()),
        ),
        // Nothing recorded may be lost: the message says where the journal went, if
        // anywhere.
        Some(problem) => {
            console.line(Level::Critical, "journal.failed", &problem);
            signals.abort();
            return ExitCode::Failed;
        }
    }
    if outcome.deviated {
        console.line(
            Level::Info,
            "experiment.deviated",
            "The steady-state has deviated, a weakness may have been discovered",
        );
    }
    signals.abort();
    code
}

/// First SIGINT/SIGTERM/SIGHUP: interrupt the run (rollbacks still play, the journal
/// is written). Second: kill every child's process tree and exit at once.
fn spawn_signal_handler(
    interrupt: Interrupt,
    console: Arc<Console>,
) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async move {
        // SIGHUP (the SSH session or terminal went away) is a request to stop like
        // SIGTERM: by default it would kill faultline with no rollback and no journal.
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
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
                interrupt.trigger(format!("received {name} during rollbacks"));
            } else if count == 1 {
                console.line(
                    Level::Warning,
                    "experiment.signal",
                    &format!("Received {name}: stopping the running activity, then rollbacks and the journal (send it again to exit at once)"),
                );
                interrupt.trigger(format!("received {name}"));
            } else {
                faultline::provider::process::kill_all_children();
                faultline::run::journal::remove_temporaries();
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
