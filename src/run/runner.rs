//! The lifecycle: hypothesis before → method (+ background activities, + continuous
//! hypothesis) → hypothesis after → rollbacks → journal.
//!
//! Statuses follow the Chaos Toolkit's outcome table (see `docs/compatibility.md`),
//! except that nothing crashes: an unexpected error anywhere becomes a status, the
//! journal is always built, and rollbacks are always considered under the strategy.

use super::journal::{self, exception, HypothesisState, JournalParts, RunEntry};
use super::{Dry, Interrupt, Phase, RunOptions, Status};
use crate::control::{ActivityInfo, Control, Decision, RunInfo};
use crate::event::Event;
use crate::experiment::config::{secret_values, Resolved};
use crate::experiment::substitute::Vars;
use crate::experiment::tolerance::{self, Check};
use crate::experiment::{Activity, ActivityKind, Experiment};
use crate::provider::{self, http::Clients, Ctx, Provider};
use crate::redact::Redactor;
use crate::timefmt;
use chrono::Utc;
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything needed to run one experiment.
pub struct Runner {
    /// The experiment.
    pub experiment: Experiment,
    /// Strategies and limits.
    pub options: RunOptions,
    /// Configuration and secrets (dynamic configuration still pending).
    pub resolved: Resolved,
    /// Who sees the events.
    pub controls: Arc<dyn Control>,
    /// Triggered by signals (and controls): stops the hypothesis and the method.
    pub interrupt: Interrupt,
    /// This run's id.
    pub run_id: String,
    /// Extra environment (from `.env` var files) for every child process.
    pub env: Vec<(String, String)>,
}

/// The result of a run.
pub struct Outcome {
    /// The journal, secrets masked.
    pub journal: Value,
    /// Final status.
    pub status: Status,
    /// Whether the steady state deviated.
    pub deviated: bool,
}

/// How one activity execution ended, beyond its journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Ok,
    Failed,
    /// The provider definition is wrong once substituted: an unexpected error.
    Invalid,
    Interrupted,
}

#[derive(Default)]
struct State {
    status: Option<Status>,
    deviated: bool,
    during: Vec<HypothesisState>,
    run: Vec<Option<RunEntry>>,
    rollbacks: Vec<Option<RunEntry>>,
}

struct Shared {
    exp: Experiment,
    opts: RunOptions,
    configuration: Map<String, Value>,
    secrets: Map<String, Value>,
    redactor: Redactor,
    controls: Arc<dyn Control>,
    interrupt: Interrupt,
    http: Clients,
    env: Vec<(String, String)>,
    state: Mutex<State>,
}

impl Shared {
    fn vars(&self) -> Vars<'_> {
        Vars {
            configuration: &self.configuration,
            secrets: &self.secrets,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn status(&self) -> Option<Status> {
        self.state().status
    }

    fn set_status(&self, s: Status) {
        self.state().status = Some(s);
    }

    fn emit(&self, e: Event) {
        let r = &self.redactor;
        let e = if r.is_empty() {
            e
        } else {
            let t = |s: String| r.text(&s).into_owned();
            match e {
                Event::RunStarted { title, run_id } => Event::RunStarted {
                    title: t(title),
                    run_id,
                },
                Event::HypothesisStarted { title, phase } => Event::HypothesisStarted {
                    title: t(title),
                    phase,
                },
                Event::ActivityEnded {
                    name,
                    phase,
                    succeeded,
                    error,
                    output,
                } => Event::ActivityEnded {
                    name,
                    phase,
                    succeeded,
                    error: error.map(t),
                    output: r.value(&output),
                },
                Event::ToleranceChecked { name, met, reason } => Event::ToleranceChecked {
                    name,
                    met,
                    reason: t(reason),
                },
                Event::Warning { message } => Event::Warning {
                    message: t(message),
                },
                Event::ProviderOutput { name, line } => Event::ProviderOutput {
                    name,
                    line: t(line),
                },
                Event::Interrupted { reason } => Event::Interrupted { reason: t(reason) },
                other => other,
            }
        };
        self.controls.on_event(&e);
    }

    fn is_dry(&self, kind: ActivityKind) -> bool {
        match self.opts.dry {
            Some(Dry::Activities) => true,
            Some(Dry::Probes) => kind == ActivityKind::Probe,
            Some(Dry::Actions) => kind == ActivityKind::Action,
            _ => false,
        }
    }

    fn provider_ctx(&self, provider: &Value) -> Ctx<'_> {
        let scopes = Provider::secret_scopes(provider);
        let secrets = scopes
            .iter()
            .filter_map(|s| self.secrets.get(s).map(|v| (s.clone(), v.clone())))
            .collect();
        Ctx {
            configuration: &self.configuration,
            secrets,
            http: &self.http,
            headers: Vec::new(),
            env: self.env.clone(),
            logs: Default::default(),
        }
    }

    /// Pause for a (substituted) number of seconds; false when interrupted.
    async fn pause(&self, v: &Value, before: bool, skip: bool, cancel: &Interrupt) -> bool {
        let v = self.vars().value(v);
        let secs = match provider::seconds(&v, "pause") {
            Ok(d) => d,
            Err(e) => {
                self.emit(Event::Warning {
                    message: format!("ignoring pause: {e}"),
                });
                return true;
            }
        };
        if secs.is_zero() {
            return true;
        }
        self.emit(Event::Pause {
            seconds: secs.as_secs_f64(),
            before,
            skipped: skip,
        });
        if skip {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(secs) => true,
            _ = cancel.triggered() => false,
        }
    }

    /// The timeout of an activity: the shortest of its own and its provider's, else the
    /// run-wide default.
    fn timeout_for(&self, a: &Activity, p: &Provider) -> Result<Duration, String> {
        let own = a
            .timeout
            .as_ref()
            .map(|t| provider::seconds(&self.vars().value(t), "the activity timeout"))
            .transpose()?;
        Ok(match (own, p.timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => self.opts.activity_timeout,
        })
    }

    /// Run a provider definition under a timeout and the cancel token.
    async fn call(
        &self,
        provider_def: &Value,
        a: &Activity,
        cancel: &Interrupt,
    ) -> (Result<Value, provider::ActivityError>, Flag) {
        let def = self.vars().value(provider_def);
        let p = match Provider::from_value(&def) {
            Ok(p) => p,
            Err(e) => {
                return (
                    Err(provider::ActivityError::new(format!(
                        "invalid provider once substituted: {e}"
                    ))),
                    Flag::Invalid,
                )
            }
        };
        let limit = match self.timeout_for(a, &p) {
            Ok(l) => l,
            Err(e) => return (Err(provider::ActivityError::new(e)), Flag::Invalid),
        };
        let ctx = self.provider_ctx(&def);
        let result = tokio::select! {
            r = tokio::time::timeout(limit, p.run(&ctx)) => match r {
                Ok(Ok(v)) => (Ok(v), Flag::Ok),
                Ok(Err(e)) => {
                    let flag = if e.invalid { Flag::Invalid } else { Flag::Failed };
                    (Err(e), flag)
                }
                Err(_) => (
                    Err(provider::ActivityError::new(format!(
                        "activity took too long to complete (timeout of {}s)",
                        limit.as_secs_f64()
                    ))),
                    Flag::Failed,
                ),
            },
            _ = cancel.triggered() => (
                Err(provider::ActivityError::new(format!(
                    "activity interrupted: {}",
                    cancel.reason().unwrap_or_default()
                ))),
                Flag::Interrupted,
            ),
        };
        let logs = std::mem::take(&mut *ctx.logs.lock().unwrap_or_else(|p| p.into_inner()));
        for line in logs {
            self.emit(Event::ProviderOutput {
                name: a.name.clone(),
                line,
            });
        }
        result
    }

    /// Execute one activity: pauses, dry mode, provider, entry, events.
    async fn execute(
        &self,
        a: &Activity,
        phase: Phase,
        cancel: &Interrupt,
    ) -> (Option<RunEntry>, Flag) {
        self.execute_notify(a, phase, cancel, None).await
    }

    /// [`Self::execute`], telling `started` once the activity has announced itself (or
    /// begins its pause), so background activities keep their console order.
    async fn execute_notify(
        &self,
        a: &Activity,
        phase: Phase,
        cancel: &Interrupt,
        mut started: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> (Option<RunEntry>, Flag) {
        let mut notify = || {
            if let Some(s) = started.take() {
                let _ = s.send(());
            }
        };
        let info = ActivityInfo {
            name: &a.name,
            kind: a.kind,
            phase,
            background: a.background,
            activity: &a.raw,
        };
        let decision = tokio::select! {
            d = self.controls.before_activity(&info) => d,
            // Stopped while a control waits (a person at a prompt): the run's own
            // interrupt handling below takes over.
            _ = cancel.triggered() => Decision::Continue,
        };
        match decision {
            Decision::Continue => {}
            // Rollbacks are never interrupted by a control: the one it names is skipped.
            Decision::Skip(reason) | Decision::Interrupt(reason)
                if decision_skips(&decision, phase) =>
            {
                notify();
                self.emit(Event::ActivitySkipped {
                    name: a.name.clone(),
                    reason,
                });
                let now = timefmt::now_iso();
                let entry = RunEntry {
                    activity: a.raw.clone(),
                    output: Value::Null,
                    start: now.clone(),
                    status: "skipped",
                    exception: None,
                    end: now,
                    duration: 0.0,
                    tolerance_met: None,
                };
                self.controls.after_activity(&info, &entry);
                return (Some(entry), Flag::Ok);
            }
            Decision::Skip(_) | Decision::Interrupt(_) => {
                let Decision::Interrupt(reason) = decision else {
                    unreachable!("skips are handled above")
                };
                notify();
                self.emit(Event::ControlInterrupted {
                    reason: reason.clone(),
                });
                self.interrupt.trigger(format!("control {reason}"));
                return (None, Flag::Interrupted);
            }
        }
        let is_dry = self.is_dry(a.kind);
        let skip_pauses = is_dry || self.opts.dry == Some(Dry::Pause);
        if let Some(p) = &a.pause_before {
            notify();
            self.pause(p, true, skip_pauses, cancel).await;
        }
        self.emit(Event::ActivityStarted {
            kind: a.kind.title(),
            name: a.name.clone(),
            background: a.background,
            phase,
        });
        notify();
        let start = Utc::now();
        let clock = Instant::now();
        let (result, flag) = if cancel.is_set() {
            (
                Err(provider::ActivityError::new(format!(
                    "activity interrupted: {}",
                    cancel.reason().unwrap_or_default()
                ))),
                Flag::Interrupted,
            )
        } else if is_dry {
            (Ok(Value::Null), Flag::Ok)
        } else {
            self.call(&a.provider, a, cancel).await
        };
        let duration = clock.elapsed().as_secs_f64();
        let end = Utc::now();
        let (output, status, exc, error) = match result {
            Ok(v) => (v, "succeeded", None, None),
            Err(e) => (
                e.output.unwrap_or(Value::Null),
                "failed",
                Some(exception(&e.message, &e.details)),
                Some(e.message),
            ),
        };
        let entry = RunEntry {
            activity: a.raw.clone(),
            output,
            start: timefmt::iso(start),
            status,
            exception: exc,
            end: timefmt::iso(end),
            duration,
            tolerance_met: None,
        };
        self.emit(Event::ActivityEnded {
            name: a.name.clone(),
            phase,
            succeeded: error.is_none(),
            error,
            output: entry.output.clone(),
        });
        if a.tolerance.is_none() && !entry.failed() {
            if let Some(code) = entry.output.get("status").and_then(Value::as_i64) {
                let http = entry.output.get("headers").is_some();
                let expected = a
                    .provider
                    .get("expected_status")
                    .is_some_and(|v| !v.is_null());
                if http && code > 399 && !expected {
                    self.emit(Event::Warning {
                        message: format!("This HTTP call returned a response with a HTTP status code {code} (above 399). This may indicate some error and not what you expected."),
                    });
                } else if !http && code != 0 && entry.output.get("stdout").is_some() {
                    self.emit(Event::Warning {
                        message: format!("This process returned a non-zero exit code ({code}). This may indicate some error and not what you expected."),
                    });
                }
            }
        }
        self.controls.after_activity(&info, &entry);
        if let Some(p) = &a.pause_after {
            if flag != Flag::Interrupted {
                self.pause(p, false, skip_pauses, cancel).await;
            }
        }
        (Some(entry), flag)
    }

    /// Check a tolerance against an output.
    async fn verdict(&self, a: &Activity, output: &Value, cancel: &Interrupt) -> (bool, String) {
        let Some(t) = &a.tolerance else {
            return (true, "no tolerance".into());
        };
        let t = self.vars().value(t);
        match tolerance::check(&t, output) {
            Check::Done(v) => (v.met, v.reason),
            Check::Probe { name, provider } => {
                let (r, _) = self.call(&provider, a, cancel).await;
                match r {
                    Ok(v) if tolerance::truthy(&v) => (
                        true,
                        format!("probe '{name}' returned {}", tolerance::brief(&v)),
                    ),
                    Ok(v) => (
                        false,
                        format!("probe '{name}' returned {}", tolerance::brief(&v)),
                    ),
                    Err(e) => (false, format!("probe '{name}' failed: {}", e.message)),
                }
            }
        }
    }

    /// Check the steady-state hypothesis once.
    async fn hypothesis(&self, phase: Phase, cancel: &Interrupt) -> (HypothesisState, Flag) {
        let hypo = self
            .exp
            .hypothesis
            .as_ref()
            .expect("only called with a hypothesis");
        if let Decision::Interrupt(reason) = self.controls.before_hypothesis(phase) {
            self.emit(Event::ControlInterrupted {
                reason: reason.clone(),
            });
            self.interrupt.trigger(format!("control {reason}"));
            return (
                HypothesisState {
                    steady_state_met: false,
                    probes: Vec::new(),
                },
                Flag::Interrupted,
            );
        }
        self.emit(Event::HypothesisStarted {
            title: self.vars().text(&hypo.title),
            phase,
        });
        let mut state = HypothesisState {
            steady_state_met: true,
            probes: Vec::new(),
        };
        let mut flag = Flag::Ok;
        let mut failing = None;
        for probe in &hypo.probes {
            let (entry, f) = self.execute(probe, phase, cancel).await;
            let Some(mut entry) = entry else {
                state.steady_state_met = false;
                flag = f;
                break;
            };
            if entry.status == "skipped" {
                state.probes.push(entry);
                continue;
            }
            if entry.failed() {
                entry.tolerance_met = Some(false);
                state.steady_state_met = false;
                failing = Some(probe.name.clone());
                state.probes.push(entry);
                flag = if f == Flag::Ok { Flag::Failed } else { f };
                if f == Flag::Failed {
                    self.emit(Event::Warning {
                        message:
                            "Probe terminated unexpectedly, so its tolerance could not be validated"
                                .into(),
                    });
                }
                break;
            }
            entry.tolerance_met = Some(true);
            if matches!(self.opts.dry, Some(Dry::Probes | Dry::Activities)) {
                state.probes.push(entry);
                continue;
            }
            let (met, reason) = self.verdict(probe, &entry.output, cancel).await;
            if cancel.is_set() {
                // A probe tolerance was stopped: no verdict, the run is interrupted.
                entry.tolerance_met = Some(false);
                state.steady_state_met = false;
                state.probes.push(entry);
                flag = Flag::Interrupted;
                break;
            }
            self.emit(Event::ToleranceChecked {
                name: probe.name.clone(),
                met,
                reason,
            });
            if !met {
                entry.tolerance_met = Some(false);
                state.steady_state_met = false;
                failing = Some(probe.name.clone());
                state.probes.push(entry);
                break;
            }
            state.probes.push(entry);
        }
        if flag != Flag::Interrupted {
            self.emit(Event::HypothesisEnded {
                phase,
                met: state.steady_state_met,
                failing_probe: failing,
            });
        }
        self.controls.after_hypothesis(phase, &state);
        (state, flag)
    }
}

/// Whether a control's decision means "skip this activity": a skip, or an interrupt
/// met during rollbacks (which controls cannot stop).
fn decision_skips(d: &Decision, phase: Phase) -> bool {
    matches!(d, Decision::Skip(_))
        || (matches!(d, Decision::Interrupt(_)) && phase == Phase::Rollback)
}

fn any_probe_failed(s: &HypothesisState) -> bool {
    s.probes.iter().any(RunEntry::failed)
}

/// Which list an entry goes to.
#[derive(Clone, Copy)]
enum List {
    Method,
    Rollbacks,
}

async fn run_list(shared: Arc<Shared>, list: List, cancel: Interrupt) {
    let (activities, phase) = match list {
        List::Method => (shared.exp.method.clone(), Phase::Method),
        List::Rollbacks => (shared.exp.rollbacks.clone(), Phase::Rollback),
    };
    let slot = |s: &mut State| -> usize {
        let v = match list {
            List::Method => &mut s.run,
            List::Rollbacks => &mut s.rollbacks,
        };
        v.push(None);
        v.len() - 1
    };
    let fill = move |s: &mut State, i: usize, e: RunEntry| match list {
        List::Method => s.run[i] = Some(e),
        List::Rollbacks => s.rollbacks[i] = Some(e),
    };
    let mut background = Vec::new();
    for a in activities {
        if cancel.is_set() {
            break;
        }
        if matches!(list, List::Method)
            && matches!(
                shared.status(),
                Some(Status::Aborted | Status::Failed | Status::Interrupted)
            )
        {
            break;
        }
        let idx = slot(&mut shared.state());
        if a.background {
            let sh = shared.clone();
            let c = cancel.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            background.push(tokio::spawn(async move {
                let (entry, flag) = sh.execute_notify(&a, phase, &c, Some(tx)).await;
                let mut st = sh.state();
                if let Some(entry) = entry {
                    fill(&mut st, idx, entry);
                }
                if flag == Flag::Invalid && matches!(list, List::Method) {
                    st.status = Some(Status::Aborted);
                }
            }));
            let _ = rx.await;
        } else {
            let (entry, flag) = shared.execute(&a, phase, &cancel).await;
            if let Some(entry) = entry {
                fill(&mut shared.state(), idx, entry);
            }
            if flag == Flag::Invalid && matches!(list, List::Method) {
                shared.set_status(Status::Aborted);
                shared.emit(Event::Warning {
                    message: "Experiment ran into an unexpected fatal error, aborting now.".into(),
                });
                break;
            }
        }
    }
    for b in background {
        let _ = b.await;
    }
}

async fn continuous(shared: Arc<Shared>, stop: Interrupt) {
    let freq = shared.opts.hypothesis_frequency.max(0.0);
    shared.emit(Event::ContinuousStarted { frequency: freq });
    let cancel = shared.interrupt.clone();
    let (mut iteration, mut failed) = (0usize, 0usize);
    loop {
        if matches!(
            shared.status(),
            Some(Status::Failed | Status::Interrupted | Status::Aborted)
        ) || cancel.is_set()
        {
            break;
        }
        iteration += 1;
        let (state, flag) = shared.hypothesis(Phase::During(iteration), &cancel).await;
        let met = state.steady_state_met;
        shared.state().during.push(state);
        if flag == Flag::Interrupted {
            break;
        }
        if flag == Flag::Invalid {
            shared.set_status(Status::Aborted);
            break;
        }
        if !met {
            failed += 1;
            if shared.opts.fail_fast {
                let ratio = failed as f64 * 100.0 / iteration as f64;
                shared.emit(Event::FailFast { ratio });
                shared.set_status(Status::Failed);
                break;
            }
        }
        if stop.is_set() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(freq)) => {}
            _ = stop.triggered() => break,
            _ = cancel.triggered() => break,
        }
    }
    shared.emit(Event::ContinuousEnded {
        iterations: iteration,
        deviations: failed,
    });
}

impl Runner {
    /// Run the experiment to its end. Never panics on bad input; always returns a
    /// journal.
    pub async fn run(self) -> Outcome {
        let started = Utc::now();
        let clock = Instant::now();
        let redactor = Redactor::new(secret_values(&self.resolved.secrets));
        let mut shared = Shared {
            exp: self.experiment,
            opts: self.options,
            configuration: self.resolved.configuration,
            secrets: self.resolved.secrets,
            redactor,
            controls: self.controls,
            interrupt: self.interrupt,
            http: Clients::default(),
            env: self.env,
            state: Mutex::new(State::default()),
        };
        let title = shared.vars().text(&shared.exp.title);
        let run_info = RunInfo {
            run_id: self.run_id.clone(),
            title: title.clone(),
            experiment: shared.redactor.value(&shared.exp.raw),
        };
        shared.controls.configure(&run_info);
        shared.emit(Event::RunStarted {
            title: title.clone(),
            run_id: self.run_id.clone(),
        });
        shared.emit(Event::Strategies {
            hypothesis: shared.opts.hypothesis_strategy.to_string(),
            rollbacks: shared.opts.rollback_strategy.to_string(),
        });
        if let Some(d) = shared.opts.dry {
            shared.emit(Event::DryRun {
                mode: d.to_string(),
            });
        }

        // Dynamic configuration: probes run once, before anything else.
        let mut config_failed = false;
        for (key, probe) in &self.resolved.pending {
            let (entry, flag) = shared
                .execute(probe, Phase::Configuration, &shared.interrupt.clone())
                .await;
            match flag {
                Flag::Ok => {
                    shared
                        .configuration
                        .insert(key.clone(), entry.map(|e| e.output).unwrap_or_default());
                }
                Flag::Interrupted => {
                    config_failed = true;
                    shared.set_status(Status::Interrupted);
                    break;
                }
                _ => {
                    shared.emit(Event::Warning {
                        message: format!("dynamic configuration '{key}' could not be loaded, the experiment cannot run"),
                    });
                    shared.set_status(Status::Failed);
                    config_failed = true;
                    break;
                }
            }
        }

        let shared = Arc::new(shared);
        let strategy = shared.opts.hypothesis_strategy;
        let has_hypothesis = shared.exp.hypothesis.is_some();
        let cancel = shared.interrupt.clone();
        let mut before = None;
        let mut after = None;
        if !has_hypothesis {
            shared.emit(Event::NoHypothesis);
        }
        let mut proceed = !config_failed;
        if proceed {
            let decision = tokio::select! {
                d = shared.controls.before_experiment(&run_info) => d,
                _ = cancel.triggered() => Decision::Continue,
            };
            if let Decision::Interrupt(reason) = decision {
                shared.emit(Event::ControlInterrupted {
                    reason: reason.clone(),
                });
                cancel.trigger(format!("control {reason}"));
                shared.set_status(Status::Interrupted);
                proceed = false;
            }
        }
        if cancel.is_set() {
            shared.set_status(Status::Interrupted);
            proceed = false;
        }
        if proceed && has_hypothesis && strategy.before() {
            let (state, flag) = shared.hypothesis(Phase::Before, &cancel).await;
            match flag {
                Flag::Interrupted => {
                    shared.set_status(Status::Interrupted);
                    proceed = false;
                }
                Flag::Invalid => {
                    shared.set_status(Status::Aborted);
                    proceed = false;
                }
                _ if !state.steady_state_met => {
                    shared.set_status(if any_probe_failed(&state) {
                        Status::Failed
                    } else {
                        Status::Completed
                    });
                    proceed = false;
                }
                _ => {}
            }
            before = Some(state);
        }
        if proceed {
            let stop = Interrupt::new();
            let looping = (has_hypothesis && strategy.during())
                .then(|| tokio::spawn(continuous(shared.clone(), stop.clone())));
            shared.emit(Event::MethodStarted);
            if shared.exp.method.is_empty() {
                shared.emit(Event::NoActivities);
            }
            match shared.controls.before_method() {
                Decision::Interrupt(reason) => {
                    shared.emit(Event::ControlInterrupted {
                        reason: reason.clone(),
                    });
                    cancel.trigger(format!("control {reason}"));
                }
                _ => run_list(shared.clone(), List::Method, cancel.clone()).await,
            }
            shared.emit(Event::MethodEnded);
            shared.controls.after_method();
            stop.trigger("method ended");
            if let Some(h) = looping {
                let _ = h.await;
            }
            if cancel.is_set() {
                shared.set_status(Status::Interrupted);
            }
            let st = shared.status();
            if !matches!(st, Some(Status::Interrupted | Status::Aborted))
                && has_hypothesis
                && strategy.after()
            {
                let (state, flag) = shared.hypothesis(Phase::After, &cancel).await;
                match flag {
                    Flag::Interrupted => shared.set_status(Status::Interrupted),
                    Flag::Invalid => shared.set_status(Status::Aborted),
                    _ if !state.steady_state_met => {
                        let mut s = shared.state();
                        s.deviated = true;
                        s.status = Some(if any_probe_failed(&state) {
                            Status::Failed
                        } else {
                            Status::Completed
                        });
                    }
                    _ => {}
                }
                after = Some(state);
            }
        }
        if cancel.is_set()
            && shared.status() != Some(Status::Interrupted)
            && !matches!(shared.status(), Some(Status::Aborted))
        {
            shared.set_status(Status::Interrupted);
        }
        let status = shared.status().unwrap_or(Status::Completed);
        let deviated = shared.state().deviated;
        if status == Status::Interrupted {
            shared.emit(Event::Interrupted {
                reason: cancel.reason().unwrap_or_else(|| "interrupted".into()),
            });
        }

        let strategy = shared.opts.rollback_strategy;
        if strategy.plays(status, deviated) {
            shared.emit(Event::RollbacksStarted);
            if shared.exp.rollbacks.is_empty() {
                shared.emit(Event::NoRollbacks);
            }
            // Rollbacks are not stopped by the first interrupt: that is the point of
            // playing them. A second signal ends the process (see the CLI).
            cancel.mark_rollbacks();
            shared.controls.before_rollbacks();
            run_list(shared.clone(), List::Rollbacks, Interrupt::new()).await;
            shared.controls.after_rollbacks();
        } else {
            let reason = match strategy {
                super::RollbackStrategy::Never => "never played".to_string(),
                super::RollbackStrategy::Deviated => "the steady state did not deviate".to_string(),
                _ => format!("the run {}", status.as_str()),
            };
            shared.emit(Event::RollbacksSkipped {
                strategy: strategy.to_string(),
                reason,
            });
        }
        shared.emit(Event::RunEnded { status, deviated });
        shared
            .controls
            .after_experiment(&run_info, status, deviated);
        shared.controls.cleanup();

        let state = shared.state();
        let run: Vec<RunEntry> = state.run.iter().flatten().cloned().collect();
        let rollbacks: Vec<RunEntry> = state.rollbacks.iter().flatten().cloned().collect();
        let mut experiment = shared.exp.raw.clone();
        if let Some(o) = experiment.as_object_mut() {
            o.insert("title".into(), Value::String(title));
            if let Some(d) = shared.opts.dry {
                o.insert("dry".into(), Value::String(d.to_string()));
            }
        }
        let extension = json!({
            "name": "faultline",
            "version": env!("CARGO_PKG_VERSION"),
            "run_id": self.run_id,
            "hypothesis_strategy": shared.opts.hypothesis_strategy.as_str(),
            "rollback_strategy": shared.opts.rollback_strategy.as_str(),
            "interrupted_by": if status == Status::Interrupted { cancel.reason() } else { None },
        });
        let journal = journal::build(
            JournalParts {
                experiment,
                start: timefmt::iso(started),
                end: timefmt::now_iso(),
                duration: clock.elapsed().as_secs_f64(),
                status: status.as_str(),
                deviated,
                before: before.as_ref(),
                after: after.as_ref(),
                during: &state.during,
                run: &run,
                rollbacks: &rollbacks,
                extension,
            },
            &shared.redactor,
        );
        Outcome {
            journal,
            status,
            deviated,
        }
    }
}
