//! One run, assembled: settings, vars, controls, safeguards, the experiment loaded and
//! checked, configuration resolved, the machine checked, strategies chosen, telemetry
//! and sinks built, the runner driven, the journal written.

use super::{controls, sinks, Narrator, Processes};
use crate::control::Control as _;
use crate::event::Level;
use crate::exit::ExitCode;
use crate::experiment::config::{parse_var, resolve, secret_values, Overrides};
use crate::experiment::{load_with, locate::locate_all, parse, FetchOptions, Problem};
use crate::provider::slo::{ReliablyEnv, SloAccess};
use crate::redact::Redactor;
use crate::run::{
    Dry, HypothesisStrategy, Interrupt, Outcome, RollbackStrategy, RunOptions, Runner,
};
use crate::settings::Settings;
use crate::telemetry::{Telemetry, TelemetryConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What to run and how: the command line's `run` flags, as values. `None` means "not
/// given here": the experiment's `runtime`, then the settings file's, then the default
/// decide.
#[derive(Clone)]
pub struct RunRequest {
    /// This run's id (the caller makes it, so its console can say it from the start).
    pub run_id: String,
    /// The experiment: a JSON or YAML file, or an http(s) URL.
    pub experiment: String,
    /// Where the journal is written.
    pub journal_path: PathBuf,
    /// The settings file (`None`: the default location, if it exists).
    pub settings: Option<PathBuf>,
    /// Do not execute these activities (or skip pauses).
    pub dry: Option<Dry>,
    /// Skip the pre-flight check of this machine.
    pub no_validation: bool,
    /// When rollbacks are played.
    pub rollback_strategy: Option<RollbackStrategy>,
    /// When the steady-state hypothesis is checked.
    pub hypothesis_strategy: Option<HypothesisStrategy>,
    /// Seconds between two checks of a continuous hypothesis.
    pub hypothesis_frequency: Option<f64>,
    /// Stop the method as soon as a continuous check deviates.
    pub fail_fast: bool,
    /// Configuration overrides, `KEY[:TYPE]=VALUE`.
    pub vars: Vec<String>,
    /// Files of configuration/secrets, or `.env` files.
    pub var_files: Vec<PathBuf>,
    /// Files of global controls.
    pub control_files: Vec<PathBuf>,
    /// Timeout in seconds of activities that declare none.
    pub activity_timeout: Option<f64>,
    /// Seconds to wait for an experiment given as a URL.
    pub fetch_timeout: Option<f64>,
    /// Stops the run (signals, a server's kill request); rollbacks still play.
    pub interrupt: Interrupt,
    /// The run's child processes (the caller keeps a clone to kill them all at once).
    pub processes: Processes,
    /// The SLO store of the run's SLO activities (`--store`): a path or a `faultline
    /// serve` URL; `None`: `FAULTLINE_STORE`, else the embedded store's default file.
    pub store: Option<String>,
    /// The store's organisation (`--org`); `None`: `FAULTLINE_ORG`, else `default`.
    pub org: Option<String>,
    /// The bearer token of a remote store (`--token`); `None`: `FAULTLINE_TOKEN`.
    pub token: Option<String>,
    /// The kill switch file (`--kill-switch`); `None`: `FAULTLINE_KILL_SWITCH`, else
    /// the settings' `kill_switch`, else the default (see [`super::kill`]).
    pub kill_switch: Option<PathBuf>,
    /// Target labels given for this run (`--label k=v`), over the experiment's.
    pub labels: Vec<String>,
    /// Record the run in the run history of its store (`--no-record`: false).
    pub record: bool,
}

impl RunRequest {
    /// A request with every choice left to the experiment, the settings and the
    /// defaults.
    pub fn new(run_id: String, experiment: String, journal_path: PathBuf) -> RunRequest {
        RunRequest {
            run_id,
            experiment,
            journal_path,
            settings: None,
            dry: None,
            no_validation: false,
            rollback_strategy: None,
            hypothesis_strategy: None,
            hypothesis_frequency: None,
            fail_fast: false,
            vars: Vec::new(),
            var_files: Vec::new(),
            control_files: Vec::new(),
            activity_timeout: None,
            fetch_timeout: None,
            interrupt: Interrupt::new(),
            processes: Processes::new(),
            store: None,
            org: None,
            token: None,
            kill_switch: None,
            labels: Vec::new(),
            record: true,
        }
    }
}

/// How a request ended.
pub struct RunEnd {
    /// The process exit code it maps to.
    pub code: ExitCode,
    /// The run, when it started (`None`: the input was refused, nothing ran).
    pub outcome: Option<Outcome>,
    /// Where the journal is, when one was written.
    pub journal: Option<PathBuf>,
    /// The run's target labels (empty when nothing ran).
    pub labels: crate::experiment::labels::TargetLabels,
}

impl RunEnd {
    fn refused() -> RunEnd {
        RunEnd {
            code: ExitCode::InvalidInput,
            outcome: None,
            journal: None,
            labels: Default::default(),
        }
    }
}

/// The narrator every line of a run goes through: each line is masked with the run's
/// secrets once they are resolved, so no warning, error or report needs masking where
/// it is written. (Lines before that quote no resolved value: settings, file and
/// parse problems name keys and paths; a run refused there has no secrets yet.)
struct Masked {
    inner: Arc<dyn Narrator>,
    redactor: std::sync::OnceLock<Redactor>,
}

impl Masked {
    fn new(inner: Arc<dyn Narrator>) -> Masked {
        Masked {
            inner,
            redactor: std::sync::OnceLock::new(),
        }
    }

    /// From now on, lines are masked with `r`.
    fn learn(&self, r: &Redactor) {
        let _ = self.redactor.set(r.clone());
    }
}

impl Narrator for Masked {
    fn line(&self, level: Level, event: &str, message: &str) {
        match self.redactor.get() {
            Some(r) => self.inner.line(level, event, &r.text(message)),
            None => self.inner.line(level, event, message),
        }
    }

    /// The inner narrator's layer as it is: the runner masks every lifecycle event
    /// before it becomes a `tracing` event.
    fn layer(&self) -> Option<crate::run::spans::RunLayer> {
        self.inner.layer()
    }
}

fn report(out: &dyn Narrator, problems: &[Problem]) {
    for p in problems {
        out.line(Level::Error, "input.invalid", &p.to_string());
    }
}

/// The limits on fetching an experiment URL: flag > settings > default.
pub fn fetch_options(flag: Option<f64>, settings: &Settings) -> Result<FetchOptions, String> {
    use crate::experiment::load::{fetch_timeout, DEFAULT_FETCH_LIMIT, DEFAULT_FETCH_TIMEOUT};
    let secs = flag
        .or(settings.fetch_timeout)
        .unwrap_or(DEFAULT_FETCH_TIMEOUT);
    let timeout = fetch_timeout(secs).map_err(|e| match flag {
        Some(_) => format!("--fetch-timeout: {e}"),
        None => e,
    })?;
    Ok(FetchOptions {
        timeout,
        limit: settings.fetch_limit.unwrap_or(DEFAULT_FETCH_LIMIT),
    })
}

/// The settings as a Python control's `settings` argument sees them: the controls
/// they declare (faultline's other settings have no Chaos Toolkit meaning).
pub(crate) fn settings_value(settings: &crate::settings::Settings) -> serde_json::Value {
    let controls: serde_json::Map<String, serde_json::Value> =
        settings.controls.iter().cloned().collect();
    serde_json::json!({ "controls": controls })
}

/// Run one experiment as `req` asks; what a person should read goes to `out`.
///
/// Bad input (settings, vars, controls, the experiment, the machine) is reported and
/// refused with [`ExitCode::InvalidInput`] before anything runs; so is a run while a
/// kill switch is engaged ([`ExitCode::KillSwitch`]), checked first of all, and
/// watched from then on (an engagement interrupts the run). Once the run starts,
/// every failure becomes its status: the journal is always written (or the end says
/// where it went), and telemetry and sinks finish within one bounded limit.
pub async fn run(req: RunRequest, console: Arc<dyn Narrator>) -> RunEnd {
    // Every line below goes through this one mask (the events are masked where they
    // leave the runner).
    let out = Arc::new(Masked::new(console.clone()));
    let settings = match crate::settings::load(req.settings.as_deref()) {
        Ok(s) => s,
        Err(p) => {
            report(&*out, &p);
            return RunEnd::refused();
        }
    };
    let mut overrides = Overrides::default();
    for f in &req.var_files {
        if let Err(p) = overrides.add_file(f) {
            report(&*out, &p);
            return RunEnd::refused();
        }
    }
    for v in &req.vars {
        match parse_var(v) {
            Ok((k, v)) => {
                overrides.set_var(&k, v);
            }
            Err(e) => {
                out.line(Level::Error, "input.invalid", &e);
                return RunEnd::refused();
            }
        }
    }

    let mut given_labels = crate::experiment::labels::TargetLabels::new();
    for l in &req.labels {
        match crate::experiment::labels::parse_label(l) {
            Ok((k, v)) => {
                given_labels.insert(k, v);
            }
            Err(e) => {
                out.line(Level::Error, "input.invalid", &format!("--label: {e}"));
                return RunEnd::refused();
            }
        }
    }

    // The environment as the run sees it: the `.env` var files over the process's.
    let env_overlay = overrides.env.clone();
    let env = move |k: &str| {
        env_overlay
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(k).ok())
    };
    // The kill switch, before anything is fetched, checked or run; watched until the
    // runner returns.
    let (store, token) = store_choice(&req, &settings.store, &env);
    let switches = super::kill::Switches::for_run(
        req.kill_switch.as_deref(),
        settings.kill_switch.as_deref(),
        store.as_deref(),
        token,
        &env,
    );
    let watch = match super::kill::Watch::start(switches, req.interrupt.clone(), out.clone()).await
    {
        Ok(w) => w,
        Err(tripped) => {
            out.line(
                Level::Critical,
                super::kill::event::REFUSED,
                &tripped.refusal(),
            );
            return RunEnd {
                code: ExitCode::KillSwitch,
                outcome: None,
                journal: None,
                labels: Default::default(),
            };
        }
    };

    // One Python worker for the run (started on first use): the pre-flight's checks,
    // the python activities and the Python controls all go to it, so modules are
    // imported once and keep their state, as under `chaos run`.
    let python = crate::provider::python::worker::Worker::new(req.processes.clone());
    python.set_env(overrides.env.clone());
    let live = crate::experiment::config::LiveConfig::default();
    let python_env = crate::control::python::PythonEnv::new(
        python.clone(),
        live.clone(),
        req.interrupt.clone(),
        settings_value(&settings),
    );
    {
        let interrupt = req.interrupt.clone();
        python.on_exit(Arc::new(move |exit| {
            use crate::provider::python::worker::Exit;
            let what = match exit {
                Exit::Graceful => "chaoslib.exit.exit_gracefully() was called",
                Exit::Ungraceful => {
                    interrupt.forbid_rollbacks();
                    "chaoslib.exit.exit_ungracefully() was called"
                }
            };
            interrupt.trigger_from(crate::run::InterruptSource::PythonExit, what);
        }));
    }

    let globals = match controls::collect_globals(&settings, &req.control_files) {
        Ok(g) => g,
        Err(p) => {
            report(&*out, &[p]);
            return RunEnd::refused();
        }
    };
    let mut built = controls::build_globals(&globals, Some(&python_env));
    let globals_count = built.controls.len();
    for c in &built.controls {
        c.before_loading(&req.experiment);
    }
    let fetch = match fetch_options(req.fetch_timeout, &settings) {
        Ok(f) => f,
        Err(e) => {
            out.line(Level::Error, "input.invalid", &e);
            return RunEnd::refused();
        }
    };
    let doc = match load_with(&req.experiment, &fetch).await {
        Ok(d) => d,
        Err(e) => {
            out.line(Level::Error, "input.invalid", &e.to_string());
            return RunEnd::refused();
        }
    };
    out.line(
        Level::Info,
        "experiment.validating",
        "Validating the experiment's syntax",
    );
    for w in &doc.warnings {
        out.line(
            Level::Warning,
            "input.duplicate_key",
            &format!("{}: {w}", doc.source),
        );
    }
    let experiment = match parse(&doc.value) {
        Ok(e) => e,
        Err(mut problems) => {
            locate_all(&mut problems, &doc.text, doc.format);
            out.line(
                Level::Critical,
                "input.invalid",
                &format!(
                    "{}: the experiment is invalid ({} problem(s)):",
                    doc.source,
                    problems.len()
                ),
            );
            report(&*out, &problems);
            return RunEnd::refused();
        }
    };
    out.line(Level::Info, "experiment.valid", "Experiment looks valid");
    for c in &built.controls[..globals_count] {
        c.after_loading(&doc.value);
    }
    controls::add_experiment(&mut built, &experiment, Some(&python_env));
    for w in &built.warnings {
        out.line(Level::Warning, "control.unsupported", w);
    }
    if !built.problems.is_empty() {
        locate_all(&mut built.problems, &doc.text, doc.format);
        report(&*out, &built.problems);
        return RunEnd::refused();
    }
    for (key, _) in &overrides.configuration {
        if !experiment.declares_config(key) {
            out.line(
                Level::Warning,
                "input.ignored",
                &format!("configuration '{key}' is not declared by the experiment: the value given with --var/--var-file is ignored"),
            );
        }
    }
    let resolved = match resolve(&experiment, &overrides, &env) {
        Ok(r) => r,
        Err(mut problems) => {
            locate_all(&mut problems, &doc.text, doc.format);
            report(&*out, &problems);
            return RunEnd::refused();
        }
    };
    // The credentials of the notifying controls come from the secrets (or the
    // environment): resolved now, and masked like the secrets from here on.
    let mut control_secrets = Vec::new();
    let mut notifier_problems = Vec::new();
    for n in &built.notifiers {
        match n.prepare(&resolved.secrets, &env) {
            Ok(values) => control_secrets.extend(values),
            Err(e) => notifier_problems.push(
                Problem::new(n.describe(), e)
                    .hint("give the credential as an argument, an environment variable (<name>_env) or a secret"),
            ),
        }
    }
    if !notifier_problems.is_empty() {
        report(&*out, &notifier_problems);
        return RunEnd::refused();
    }
    // Every message from here on may quote a resolved value: masked.
    let redactor = Redactor::new(
        secret_values(&resolved.secrets)
            .into_iter()
            .chain(control_secrets.iter().cloned()),
    );
    out.learn(&redactor);
    for n in &built.notifiers {
        n.learn(&redactor);
    }
    python_env.set_redactor(redactor.clone());
    for p in crate::experiment::labels::problems(&resolved.configuration) {
        out.line(
            Level::Warning,
            "input.ignored",
            &format!("{p}: these labels are ignored"),
        );
    }
    for a in &built.alerts {
        a.set_secrets(&resolved.secrets);
    }
    let labels: crate::experiment::labels::TargetLabels = crate::experiment::labels::target_labels(
        &experiment.raw,
        &resolved.configuration,
        &given_labels,
    )
    .into_iter()
    .map(|(k, v)| (k, redactor.text(&v).into_owned()))
    .collect();

    if !req.no_validation {
        let mut problems = crate::run::preflight::check(
            &experiment,
            &resolved.configuration,
            &resolved.secrets,
            &req.processes,
            &python,
        )
        .await;
        if !problems.is_empty() {
            locate_all(&mut problems, &doc.text, doc.format);
            out.line(
                Level::Critical,
                "input.invalid",
                &format!(
                    "{}: this machine cannot run the experiment as written ({} problem(s)):",
                    doc.source,
                    problems.len()
                ),
            );
            for p in &problems {
                out.line(Level::Error, "input.invalid", &p.to_string());
            }
            return RunEnd::refused();
        }
    }
    let Some(slo) = slo_access(&req, &settings.store, &experiment, &env, &*out) else {
        return RunEnd::refused();
    };
    let options = match options(&req, &experiment.runtime, &settings, &*out) {
        Some(o) => o,
        None => return RunEnd::refused(),
    };

    out.line(
        Level::Info,
        "experiment.run_id",
        &format!("Run id: {}", req.run_id),
    );
    let telemetry = telemetry(&req, &settings, redactor.clone(), &env, &*out);
    let sink_plan = match sinks::plan(&settings, &built.humio, &resolved, &env) {
        Ok(p) => p,
        Err(problems) => {
            report(&*out, &problems);
            return RunEnd::refused();
        }
    };
    for w in &sink_plan.warnings {
        out.line(Level::Warning, "sink.disabled", w);
    }
    let sinks = if sink_plan.configs.is_empty() {
        None
    } else {
        match crate::sink::Sinks::from_config_with_env(&sink_plan.configs, &env) {
            Ok(s) => {
                for w in s.warnings() {
                    out.line(Level::Warning, "sink.warning", w);
                }
                Some(s)
            }
            Err(e) => {
                out.line(Level::Error, "input.invalid", &format!("log sinks: {e}"));
                return RunEnd::refused();
            }
        }
    };
    let built_metrics = built.metrics.clone();
    let built_notifiers = built.notifiers.clone();
    let built_run_metrics = built.run_metrics.clone();
    let built_alerts = built.alerts.clone();
    // The layer-fed sinks (OTLP logs) name the run and its title (as the runner
    // renders it, secrets masked) on every record.
    // The console and the log sinks observe the run as layers on its subscriber.
    let mut layers: Vec<crate::run::spans::RunLayer> = out.layer().into_iter().collect();
    if let Some(s) = &sinks {
        layers.push(Box::new(crate::sink::SinksLayer::new(s.emitter())));
        let vars = crate::experiment::substitute::Vars {
            configuration: &resolved.configuration,
            secrets: &resolved.secrets,
        };
        let title = redactor.text(&vars.text(&experiment.title)).into_owned();
        layers.extend(s.layers(&req.run_id, &title));
    }
    let history = req.record.then(|| {
        let vars = crate::experiment::substitute::Vars {
            configuration: &resolved.configuration,
            secrets: &resolved.secrets,
        };
        let title = redactor.text(&vars.text(&experiment.title)).into_owned();
        (title, history_target(&req, &settings.store, &env))
    });
    let runner = Runner {
        experiment,
        options,
        resolved,
        controls: Arc::new(built.controls),
        interrupt: req.interrupt.clone(),
        run_id: req.run_id.clone(),
        env: overrides.env,
        // No tracer when telemetry is off: the run's subscriber then has no
        // OpenTelemetry layer at all.
        tracer: telemetry.is_recording().then(|| telemetry.tracer()),
        trace_parent: telemetry.parent_context(),
        safeguards: std::mem::take(&mut built.safeguards),
        processes: req.processes.clone(),
        layers,
        slo: slo.clone(),
        python: Some(python.clone()),
        live: Some(live.clone()),
        labels: labels.clone(),
        // Where controls say the journal is: the path asked for, made absolute
        // (a notice is read elsewhere than in this directory).
        journal: Some(
            std::path::absolute(&req.journal_path).unwrap_or_else(|_| req.journal_path.clone()),
        ),
        masked: control_secrets,
    };
    let outcome = runner.run().await;
    // Every call was answered or dropped: the worker exits when its input closes.
    {
        let python = python.clone();
        let _ = tokio::task::spawn_blocking(move || python.shutdown(Duration::from_secs(2))).await;
    }
    // The run is over: an engagement from now on stops nothing.
    drop(watch);
    // What the SLO activities wrote is committed before the run says it ended.
    slo.close().await;
    // Telemetry and sinks finish together, within one shared limit; the notifying
    // controls' last deliveries meanwhile, within their own bound (each delivery's
    // retry budget, the end after the start).
    let limit = telemetry.shutdown_limit();
    let notified = {
        let notifiers = built_notifiers.clone();
        let deadline = std::time::Instant::now() + NOTIFY_LIMIT;
        async move {
            if notifiers.is_empty() {
                return Vec::new();
            }
            tokio::task::spawn_blocking(move || {
                notifiers
                    .iter()
                    .flat_map(|n| {
                        let who = n.describe();
                        n.finish(deadline)
                            .into_iter()
                            .map(move |e| format!("{who}: {e}"))
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default()
        }
    };
    let (delivery, sink_reports, notify_failures) = tokio::join!(
        telemetry.shutdown(),
        async {
            match sinks {
                // The limit is the whole budget: leave the sinks' own slack inside it.
                Some(s) => {
                    s.shutdown(limit.saturating_sub(Duration::from_millis(150)))
                        .await
                }
                None => Vec::new(),
            }
        },
        notified
    );
    for m in &built_metrics {
        for e in m.errors() {
            out.line(
                Level::Warning,
                "metrics.push_failed",
                &format!("Prometheus run metrics: {e}"),
            );
        }
    }
    for e in &notify_failures {
        out.line(Level::Warning, crate::control::deliver::DELIVERY_FAILED, e);
    }
    for m in &built_run_metrics {
        for e in m.errors() {
            out.line(
                Level::Warning,
                "metrics.push_failed",
                &format!("faultline run metrics: {e}"),
            );
        }
    }
    for a in &built_alerts {
        for e in a.errors() {
            out.line(
                Level::Warning,
                "alerts.query_failed",
                &format!("alerts during the run: {e}"),
            );
        }
        let recorded = a.recorded();
        if !recorded.is_empty() {
            let names: Vec<&str> = recorded.iter().map(|x| x.name.as_str()).collect();
            out.line(
                Level::Info,
                "alerts.recorded",
                &format!(
                    "{} alert(s) fired during the run: {}",
                    recorded.len(),
                    names.join(", ")
                ),
            );
        }
    }
    for r in &sink_reports {
        out.line(
            if r.dropped == 0 {
                Level::Info
            } else {
                Level::Warning
            },
            "sink.report",
            &r.to_string(),
        );
    }
    out.line(
        if delivery.complete() {
            Level::Info
        } else {
            Level::Warning
        },
        "telemetry.report",
        &delivery.to_string(),
    );
    let code = ExitCode::for_run(outcome.status, outcome.deviated);
    let fallback = std::env::temp_dir().join(format!("faultline-journal-{}.json", req.run_id));
    let written = crate::run::journal::finish(&req.journal_path, &outcome.record, &fallback);
    if let Some(problem) = written.problem(&req.journal_path) {
        // Nothing recorded may be lost: the message says where the journal went, if
        // anywhere.
        out.line(Level::Critical, "journal.failed", &problem);
        let journal = match written {
            crate::run::journal::Written::Fallback { fallback, .. } => Some(fallback),
            _ => None,
        };
        if let Some((title, target)) = &history {
            let summary = super::history::summary(&outcome, title, &labels, journal.as_deref());
            super::history::record(target, &summary, &*out).await;
        }
        return RunEnd {
            code: ExitCode::Failed,
            outcome: Some(outcome),
            journal,
            labels,
        };
    }
    out.line(
        Level::Info,
        "journal.written",
        &format!("Journal written to {}", req.journal_path.display()),
    );
    if let Some((title, target)) = &history {
        let summary =
            super::history::summary(&outcome, title, &labels, Some(req.journal_path.as_path()));
        super::history::record(target, &summary, &*out).await;
    }
    if outcome.deviated {
        out.line(
            Level::Info,
            "experiment.deviated",
            "The steady-state has deviated, a weakness may have been discovered",
        );
    }
    let journal = Some(req.journal_path.clone());
    RunEnd {
        code,
        outcome: Some(outcome),
        journal,
        labels,
    }
}

/// The most the end of a run waits for the notifying controls' last deliveries: the
/// start's budget and the end's, and some slack (both run in the background, so
/// several controls take this long together, not each).
const NOTIFY_LIMIT: Duration = Duration::from_secs(7);

/// The run's SLO store access: `--store` > `FAULTLINE_STORE` > the settings'
/// `store.location` > the default file, `--org` > `FAULTLINE_ORG` > `store.org` >
/// `default`, `--token` > `FAULTLINE_TOKEN` > `store.token`, and the
/// Reliably client's `RELIABLY_*` for `slo_is_met`. Nothing is opened here (a run
/// without SLO activities creates no file); a store setting that cannot work is
/// refused before the run only when an activity needs the store (`None`).
fn slo_access(
    req: &RunRequest,
    settings: &crate::settings::StoreSettings,
    experiment: &crate::experiment::Experiment,
    env: &dyn Fn(&str) -> Option<String>,
    out: &dyn Narrator,
) -> Option<SloAccess> {
    use crate::store::{org_name, StoreSpec, DEFAULT_ORG};
    let (store, token) = store_choice(req, settings, env);
    let org =
        given(&req.org, env("FAULTLINE_ORG"), &settings.org).unwrap_or_else(|| DEFAULT_ORG.into());
    let spec = StoreSpec::parse(store.as_deref(), token, env).map_err(|e| e.to_string());
    let org_checked = org_name(&org).map_err(|e| format!("--org (FAULTLINE_ORG): {e}"));
    let activities = experiment
        .hypothesis
        .iter()
        .flat_map(|h| h.probes.iter())
        .chain(experiment.method.iter())
        .chain(experiment.rollbacks.iter());
    let needed = activities
        .clone()
        .any(|a| crate::provider::slo::uses_slo(&a.provider));
    // Objective files the `slo` probes judge from the store: upserted when the store
    // opens, before any indicator of the run arrives.
    let objectives: Vec<_> = activities
        .clone()
        .flat_map(|a| crate::provider::slo::store_objectives(&a.provider))
        .collect();
    if needed {
        let problems: Vec<String> = [spec.as_ref().err(), org_checked.as_ref().err()]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if !problems.is_empty() {
            for p in problems {
                out.line(
                    Level::Error,
                    "input.invalid",
                    &format!("the SLO store of this run's SLO activities: {p}"),
                );
            }
            return None;
        }
    }
    let reliably = ReliablyEnv {
        host: env("RELIABLY_HOST"),
        token: env("RELIABLY_TOKEN"),
        org: env("RELIABLY_ORG"),
    };
    Some(
        SloAccess::new(
            spec,
            org_checked.unwrap_or_else(|_| DEFAULT_ORG.into()),
            reliably,
        )
        .with_remote_write(env("FAULTLINE_REMOTE_WRITE"))
        .with_objectives(objectives),
    )
}

/// Where the run records itself: the run's store (as its SLO activities use it) and
/// organisation, and the spool beside it.
fn history_target(
    req: &RunRequest,
    settings: &crate::settings::StoreSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> super::history::Target {
    use crate::store::{org_name, StoreSpec, DEFAULT_ORG};
    let (store, token) = store_choice(req, settings, env);
    let org =
        given(&req.org, env("FAULTLINE_ORG"), &settings.org).unwrap_or_else(|| DEFAULT_ORG.into());
    let spec = StoreSpec::parse(store.as_deref(), token, env)
        .map_err(|e| e.to_string())
        .and_then(|s| org_name(&org).map(|_| s).map_err(|e| format!("--org: {e}")));
    super::history::Target {
        spec,
        org: org_name(&org).unwrap_or_else(|_| DEFAULT_ORG.into()),
        spool: super::history::spool_root(env),
    }
}

/// The first of flag, variable and setting that says something.
fn given(flag: &Option<String>, var: Option<String>, setting: &Option<String>) -> Option<String> {
    [flag.clone(), var, setting.clone()]
        .into_iter()
        .flatten()
        .find(|s| !s.trim().is_empty())
}

/// The run's store and token as written: `--store` > `FAULTLINE_STORE` > the
/// settings' `store.location`, `--token` > `FAULTLINE_TOKEN` > `store.token`. Its SLO
/// activities use that store, and the run obeys the kill switch of a server there.
fn store_choice(
    req: &RunRequest,
    settings: &crate::settings::StoreSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Option<String>, Option<String>) {
    (
        given(&req.store, env("FAULTLINE_STORE"), &settings.location),
        given(&req.token, env("FAULTLINE_TOKEN"), &settings.token),
    )
}

/// The run's options: flag > experiment `runtime` > settings `runtime` > default,
/// each number checked where it was written, so a message names its source.
fn options(
    req: &RunRequest,
    rt: &crate::experiment::model::Runtime,
    settings: &Settings,
    out: &dyn Narrator,
) -> Option<RunOptions> {
    let srt = &settings.runtime;
    let defaults = RunOptions::default();
    let checked = |what: &str, v: f64| {
        crate::duration::positive_seconds(v)
            .map_err(|e| {
                out.line(
                    Level::Error,
                    "input.invalid",
                    &format!("{what}: {e} ({})", crate::duration::HINT),
                );
            })
            .ok()
    };
    let frequency = match (
        req.hypothesis_frequency,
        rt.hypothesis_frequency,
        srt.hypothesis_frequency,
    ) {
        (Some(f), _, _) => checked("--hypothesis-frequency", f),
        (None, Some(f), _) => checked("the experiment's runtime.hypothesis.frequency", f),
        (None, None, Some(f)) => checked("the settings' runtime.hypothesis.frequency", f),
        (None, None, None) => Some(defaults.hypothesis_frequency),
    };
    let activity_timeout = match (req.activity_timeout, settings.activity_timeout) {
        (Some(t), _) => checked("--activity-timeout", t),
        (None, Some(t)) => checked("the settings' activity_timeout", t),
        (None, None) => Some(defaults.activity_timeout),
    };
    Some(RunOptions {
        hypothesis_strategy: req
            .hypothesis_strategy
            .or(rt.hypothesis_strategy)
            .or(srt.hypothesis_strategy)
            .unwrap_or(defaults.hypothesis_strategy),
        hypothesis_frequency: frequency?,
        fail_fast: req.fail_fast || rt.fail_fast.or(srt.fail_fast).unwrap_or(false),
        rollback_strategy: req
            .rollback_strategy
            .or(rt.rollback_strategy)
            .or(srt.rollback_strategy)
            .unwrap_or(defaults.rollback_strategy),
        dry: req.dry,
        activity_timeout: activity_timeout?,
        output_limit: settings.output_limit.unwrap_or(defaults.output_limit),
        prometheus: settings.prometheus.defaults(),
    })
}

/// The run's telemetry. It must never hurt the run: a setup problem is a warning, and
/// tracing is off for this run.
fn telemetry(
    req: &RunRequest,
    settings: &Settings,
    redactor: Redactor,
    env: &dyn Fn(&str) -> Option<String>,
    out: &dyn Narrator,
) -> Telemetry {
    let mut tcfg = TelemetryConfig::new(req.run_id.clone(), req.journal_path.clone());
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
        .and_then(|t| crate::duration::positive_seconds(t).ok());
    tcfg.service_name = ts.service_name.clone();
    tcfg.redactor = redactor;
    if let Some(l) = ts
        .shutdown_limit
        .and_then(|l| crate::duration::positive_seconds(l).ok())
    {
        tcfg.shutdown_limit = l;
    }
    let telemetry = match Telemetry::init(tcfg, env) {
        Ok(t) => t,
        Err(e) => {
            out.line(
                Level::Warning,
                "telemetry.disabled",
                &format!("tracing is off for this run: {e}"),
            );
            Telemetry::disabled()
        }
    };
    for w in telemetry.warnings() {
        out.line(Level::Warning, "telemetry.warning", w);
    }
    out.line(
        Level::Info,
        "telemetry.destination",
        &format!("Spans go to {}", telemetry.destination()),
    );
    telemetry
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);
    impl Narrator for Lines {
        fn line(&self, _: Level, event: &str, message: &str) {
            self.0.lock().unwrap().push(format!("{event}: {message}"));
        }
    }

    #[test]
    fn every_line_is_masked_once_the_secrets_are_known() {
        let lines = Arc::new(Lines::default());
        let out = Masked::new(lines.clone());
        out.line(Level::Warning, "input.ignored", "key 'k' ignored");
        out.learn(&Redactor::new(["s3cr3t value".to_string()]));
        out.line(
            Level::Warning,
            "metrics.push_failed",
            "push to http://h/?k=s3cr3t%20value failed",
        );
        report(&out, &[Problem::new("$.x", "found 's3cr3t value'")]);
        let got = lines.0.lock().unwrap().join("\n");
        assert!(got.contains("key 'k' ignored"), "{got}");
        assert!(got.contains("?k=*** failed"), "{got}");
        assert!(got.contains("found '***'"), "{got}");
        assert!(!got.contains("s3cr3t"), "{got}");
    }
}
