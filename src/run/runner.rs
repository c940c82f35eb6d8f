//! The lifecycle: hypothesis before → method (+ background activities, + continuous
//! hypothesis) → hypothesis after → rollbacks → journal.
//!
//! Statuses follow the Chaos Toolkit's outcome table (see `docs/compatibility.md`),
//! except that nothing crashes: an unexpected error anywhere becomes a status, the
//! journal is always built, and rollbacks are always considered under the strategy.

use super::journal::exception;
use super::record::{
    ActivityStatus, FaultlineExtension, HypothesisState, RecordParts, RunEntry, RunRecord,
};
use super::spans::{self, attr, Trace};
use super::{Dry, Interrupt, Phase, RunOptions, Status};
use crate::control::{ActivityInfo, Control, Decision, RunInfo};
use crate::event::{Event, TraceIds};
use crate::experiment::config::{secret_values, LiveConfig, Resolved, Snapshot};
use crate::experiment::tolerance::{self, Check, Verdict};
use crate::experiment::{Activity, ActivityKind, Experiment};
use crate::provider::{self, http::Clients, Ctx, Provider};
use crate::redact::Redactor;
use crate::telemetry::propagation;
use crate::timefmt;
use chrono::Utc;
use opentelemetry::Context;
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::instrument::WithSubscriber;
use tracing::Span;

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
    /// The tracer for the run's spans (`None`: no spans, nothing recorded, but ids
    /// are still generated and propagated).
    pub tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
    /// The parent of the experiment span (a CI pipeline's `TRACEPARENT`), or empty.
    pub trace_parent: Context,
    /// Safeguard probes: a miss interrupts the run.
    pub safeguards: Vec<super::Safeguard>,
    /// Layers on the run's own subscriber, besides OpenTelemetry's: observers of its
    /// spans and lifecycle events (the console).
    pub layers: Vec<spans::RunLayer>,
    /// This run's child processes (a second signal kills them through it).
    pub processes: crate::provider::process::Processes,
    /// The SLO store of the run's SLO activities, carried to them untouched (opened
    /// on first use).
    pub slo: crate::provider::slo::SloAccess,
    /// The run's Python worker (started on first use); `None`: a new one for this run.
    pub python: Option<crate::provider::python::worker::Worker>,
    /// Where the run keeps its configuration and secrets, shared with the Python
    /// controls that may change them; `None`: the run's own.
    pub live: Option<LiveConfig>,
    /// What the run targets (`service`, …), secrets masked: controls see them in
    /// `RunInfo`, the run history and metrics carry them.
    pub labels: crate::experiment::labels::TargetLabels,
    /// Where the journal is to be written, for controls that point to it (`RunInfo`).
    pub journal: Option<std::path::PathBuf>,
    /// Values masked like the secrets, though not secrets of the experiment: the
    /// credentials of built-in controls (a token from `token_env`).
    pub masked: Vec<String>,
}

/// The result of a run.
pub struct Outcome {
    /// The run's record (the journal), secrets masked.
    pub record: RunRecord,
    /// Final status.
    pub status: Status,
    /// Whether the steady state deviated.
    pub deviated: bool,
    /// The run's trace id, when spans are recorded.
    pub trace_id: Option<String>,
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
    /// Configuration and secrets, as Python controls may change them mid-run.
    live: LiveConfig,
    redactor: Redactor,
    controls: Arc<dyn Control>,
    interrupt: Interrupt,
    http: Clients,
    env: Vec<(String, String)>,
    trace: Trace,
    processes: crate::provider::process::Processes,
    /// The experiment span: the parent of everything else.
    exp_span: Span,
    /// W3C baggage sent with every request and to every child: run id, experiment.
    baggage: Vec<(String, String)>,
    /// What providers may know of the run (ids, start, SLO store).
    facts: provider::RunFacts,
    state: Mutex<State>,
}

impl Shared {
    /// The configuration and secrets as they are now, for substitution.
    fn vars(&self) -> Snapshot {
        self.live.get()
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
        self.emit_in(e, &self.exp_span);
    }

    /// Emit an event that belongs to `span` (its ids go with the event).
    fn emit_in(&self, e: Event, span: &Span) {
        let e = e.redacted(&self.redactor);
        let ids = propagation::ids(&self.trace.context(span))
            .map(|(trace_id, span_id)| TraceIds { trace_id, span_id });
        e.trace_in(span, ids.as_ref());
    }

    fn is_dry(&self, kind: ActivityKind) -> bool {
        match self.opts.dry {
            Some(Dry::Activities) => true,
            Some(Dry::Probes) => kind == ActivityKind::Probe,
            Some(Dry::Actions) => kind == ActivityKind::Action,
            _ => false,
        }
    }

    fn baggage(&self) -> Vec<(&str, &str)> {
        self.baggage
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn provider_ctx(&self, provider: &Value, span: &Span) -> Ctx<'_> {
        let scopes = Provider::secret_scopes(provider);
        let now = self.live.get();
        let secrets = scopes
            .iter()
            .filter_map(|s| now.secrets.get(s).map(|v| (s.clone(), v.clone())))
            .collect();
        // Trace context goes as headers on HTTP requests (from the CLIENT span an HTTP
        // provider makes when spans are recorded) and as variables for children.
        let http = provider.get("type").and_then(Value::as_str) == Some("http");
        let tracing = self.trace.is_recording();
        let cx = self.trace.context(span);
        Ctx {
            configuration: now.configuration.clone(),
            secrets,
            http: &self.http,
            headers: if !tracing {
                propagation::http_headers(&cx, &self.baggage())
            } else {
                Vec::new()
            },
            env: if http {
                Vec::new()
            } else {
                self.env
                    .iter()
                    .cloned()
                    .chain(propagation::child_env(&cx, &self.baggage()))
                    .collect()
            },
            logs: Default::default(),
            redactor: &self.redactor,
            output_limit: self.opts.output_limit,
            warnings: Default::default(),
            processes: &self.processes,
            run: &self.facts,
            trace: tracing.then(|| provider::TraceCtx {
                parent: span.clone(),
                baggage: self.baggage.clone(),
            }),
        }
    }

    /// An activity's pauses, substituted: a value that is not a number of seconds (or
    /// one out of range) is the activity's failure, found before anything runs, and
    /// like any definition wrong once substituted, the run's unexpected error.
    fn pauses(&self, a: &Activity) -> Result<(Option<Duration>, Option<Duration>), String> {
        let one = |p: &Option<Value>, when: &str| {
            p.as_ref()
                .map(|p| provider::seconds(&self.vars().value(p), &format!("pauses.{when}")))
                .transpose()
        };
        Ok((
            one(&a.pause_before, "before")?,
            one(&a.pause_after, "after")?,
        ))
    }

    /// Pause; false when interrupted.
    async fn pause(
        &self,
        secs: Duration,
        before: bool,
        skip: bool,
        cancel: &Interrupt,
        span: &Span,
    ) -> bool {
        if secs.is_zero() {
            return true;
        }
        let when = if before { "before" } else { "after" };
        spans::pause(span, secs.as_secs_f64(), when, skip);
        self.emit_in(
            Event::Pause {
                seconds: secs.as_secs_f64(),
                before,
                skipped: skip,
            },
            span,
        );
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
        span: &Span,
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
        span.record(attr::ACTIVITY_TIMEOUT, limit.as_secs_f64());
        let mut ctx = self.provider_ctx(&def, span);
        if let Some(l) = p.output_limit() {
            ctx.output_limit = l;
        }
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
            self.emit_in(
                Event::ProviderOutput {
                    name: a.name.clone(),
                    line,
                },
                span,
            );
        }
        // What was cut from the output, on the console (the output records it too).
        let cut = std::mem::take(&mut *ctx.warnings.lock().unwrap_or_else(|p| p.into_inner()));
        for w in cut {
            self.emit_in(
                Event::Warning {
                    message: format!("activity '{}': {w}", a.name),
                },
                span,
            );
        }
        result
    }

    /// Execute one activity under `parent`: control hooks, pauses, dry mode, provider,
    /// entry, events. Returns the activity span, still open: the caller ends it with
    /// [`Self::finish`] (the hypothesis first records the tolerance verdict).
    async fn execute(
        &self,
        a: &Activity,
        phase: Phase,
        cancel: &Interrupt,
        parent: &Span,
    ) -> (Option<RunEntry>, Flag, Span) {
        self.execute_notify(a, phase, cancel, parent, None).await
    }

    /// The activity's span under `parent`, with what is known before it runs.
    fn activity_span(&self, a: &Activity, phase: Phase, parent: &Span) -> Span {
        let p = &a.provider;
        let executable = p.get("path").and_then(Value::as_str).map(|path| {
            let exe = self.redactor.text(&self.vars().text(path)).into_owned();
            exe.rsplit('/').next().unwrap_or_default().to_string()
        });
        let python = match (
            p.get("module").and_then(Value::as_str),
            p.get("func").and_then(Value::as_str),
        ) {
            (Some(m), Some(f)) => Some((m, f)),
            _ => None,
        };
        spans::activity(
            parent,
            &spans::ActivityFields {
                title: &format!("{} {}", a.kind.as_str(), a.name),
                name: &a.name,
                kind: a.kind.as_str(),
                phase: phase.as_str(),
                background: a.background,
                provider_type: p.get("type").and_then(Value::as_str),
                executable: executable.as_deref(),
                module: python.map(|(m, _)| m),
                function: python.map(|(_, f)| f),
            },
        )
    }

    /// End an activity span: its status, output (masked, capped), ERROR on failure or
    /// on `error` (a missed tolerance).
    fn finish(&self, span: Span, entry: Option<&RunEntry>, error: Option<String>) {
        let mut error = error;
        if let Some(e) = entry {
            span.record(attr::ACTIVITY_STATUS, e.status.as_str());
            if !e.output.is_null() {
                let out = self.redactor.value(&e.output).to_string();
                span.record(attr::ACTIVITY_OUTPUT, spans::cap(&out).as_str());
            }
            if let Some(code) = e.output.get("status").and_then(Value::as_i64) {
                if e.output.get("stdout").is_some() {
                    span.record(attr::PROCESS_EXIT_CODE, code);
                }
            }
            if let Some(exc) = e.exception.as_ref().and_then(|x| x.last()) {
                let msg = self
                    .redactor
                    .text(super::journal::failure_message(exc))
                    .into_owned();
                span.record(attr::ACTIVITY_ERROR, spans::cap(&msg).as_str());
                error = error.or(Some(msg));
            }
        }
        let error = error.map(|e| self.redactor.text(&e).into_owned());
        spans::end(span, error.as_deref());
    }

    /// [`Self::execute`], telling `started` once the activity has announced itself (or
    /// begins its pause), so background activities keep their console order.
    async fn execute_notify(
        &self,
        a: &Activity,
        phase: Phase,
        cancel: &Interrupt,
        parent: &Span,
        mut started: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> (Option<RunEntry>, Flag, Span) {
        let mut notify = || {
            if let Some(s) = started.take() {
                let _ = s.send(());
            }
        };
        let span = self.activity_span(a, phase, parent);
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
                spans::skip(&span, &reason);
                self.emit_in(
                    Event::ActivitySkipped {
                        name: a.name.clone(),
                        reason,
                    },
                    &span,
                );
                let now = timefmt::now_iso();
                let entry = RunEntry {
                    activity: a.raw.clone(),
                    output: Value::Null,
                    start: now.clone(),
                    status: ActivityStatus::Skipped,
                    exception: None,
                    end: now,
                    duration: 0.0,
                    tolerance_met: None,
                    evidence: None,
                };
                self.controls.after_activity(&info, &entry);
                return (Some(entry), Flag::Ok, span);
            }
            Decision::Skip(_) | Decision::Interrupt(_) => {
                let Decision::Interrupt(reason) = decision else {
                    unreachable!("skips are handled above")
                };
                notify();
                spans::interrupt(&span, &reason);
                self.emit_in(
                    Event::ControlInterrupted {
                        reason: reason.clone(),
                    },
                    &span,
                );
                self.interrupt.trigger(format!("control {reason}"));
                span.record(attr::ACTIVITY_STATUS, "interrupted");
                return (None, Flag::Interrupted, span);
            }
        }
        let is_dry = self.is_dry(a.kind);
        let skip_pauses = is_dry || self.opts.dry == Some(Dry::Pause);
        let pauses = self.pauses(a);
        if let Ok((Some(d), _)) = pauses {
            notify();
            self.pause(d, true, skip_pauses, cancel, &span).await;
        }
        self.emit_in(
            Event::ActivityStarted {
                kind: a.kind.title(),
                name: a.name.clone(),
                background: a.background,
                phase,
            },
            &span,
        );
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
        } else if let Err(e) = &pauses {
            (Err(provider::ActivityError::new(e.clone())), Flag::Invalid)
        } else if is_dry {
            (Ok(Value::Null), Flag::Ok)
        } else {
            self.call(&a.provider, a, cancel, &span).await
        };
        if flag == Flag::Interrupted {
            spans::interrupt(&span, &cancel.reason().unwrap_or_default());
        }
        let duration = clock.elapsed().as_secs_f64();
        let end = Utc::now();
        let (output, status, exc, error) = match result {
            Ok(v) => (v, ActivityStatus::Succeeded, None, None),
            Err(e) => (
                e.output.unwrap_or(Value::Null),
                ActivityStatus::Failed,
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
            evidence: None,
        };
        self.emit_in(
            Event::ActivityEnded {
                name: a.name.clone(),
                phase,
                succeeded: error.is_none(),
                error,
                output: entry.output.clone(),
            },
            &span,
        );
        if a.tolerance.is_none() && !entry.failed() {
            if let Some(code) = entry.output.get("status").and_then(Value::as_i64) {
                let http = entry.output.get("headers").is_some();
                let expected = a
                    .provider
                    .get("expected_status")
                    .is_some_and(|v| !v.is_null());
                if http && code > 399 && !expected {
                    self.emit_in(Event::Warning {
                        message: format!("This HTTP call returned a response with a HTTP status code {code} (above 399). This may indicate some error and not what you expected."),
                    }, &span);
                } else if !http && code != 0 && entry.output.get("stdout").is_some() {
                    self.emit_in(Event::Warning {
                        message: format!("This process returned a non-zero exit code ({code}). This may indicate some error and not what you expected."),
                    }, &span);
                }
            }
        }
        self.controls.after_activity(&info, &entry);
        if let Ok((_, Some(d))) = pauses {
            if flag != Flag::Interrupted {
                self.pause(d, false, skip_pauses, cancel, &span).await;
            }
        }
        (Some(entry), flag, span)
    }

    /// Check a tolerance against an output.
    async fn verdict(
        &self,
        a: &Activity,
        output: &Value,
        cancel: &Interrupt,
        span: &Span,
    ) -> Verdict {
        let plain = |met: bool, reason: String| Verdict {
            met,
            inconclusive: false,
            reason,
            evidence: Map::new(),
        };
        let Some(t) = &a.tolerance else {
            return plain(true, "no tolerance".into());
        };
        let t = self.vars().value(t);
        let mut v = match tolerance::check(&t, output) {
            Check::Done(v) => v,
            Check::Probe { name, provider } => {
                let (r, _) = self.call(&provider, a, cancel, span).await;
                match r {
                    Ok(v) => plain(
                        tolerance::truthy(&v),
                        format!("probe '{name}' returned {}", tolerance::brief(&v)),
                    ),
                    Err(e) => plain(false, format!("probe '{name}' failed: {}", e.message)),
                }
            }
        };
        v.evidence
            .entry("expected")
            .or_insert_with(|| self.redactor.value(&t));
        v
    }

    /// Say a verdict: a span event with the evidence, the lifecycle event (console,
    /// logs), and the journal's `evidence` of the entry.
    fn report_verdict(&self, probe: &Activity, v: &Verdict, entry: &mut RunEntry, span: &Span) {
        let evidence = self.redactor.value(&v.record());
        let text = |k: &str| {
            evidence.get(k).map(|x| match x {
                Value::String(s) => spans::cap(s),
                other => spans::cap(&other.to_string()),
            })
        };
        let time = text("time").or_else(|| match (text("start"), text("end")) {
            (Some(s), Some(e)) => Some(format!("{s}/{e}")),
            _ => None,
        });
        let reason = spans::cap(&self.redactor.text(&v.reason));
        spans::tolerance(
            span,
            &spans::ToleranceFields {
                met: v.met,
                verdict: v.label(),
                expected: text("expected").as_deref(),
                actual: text("actual").as_deref(),
                query: text("query").as_deref(),
                time: time.as_deref(),
                reason: &reason,
            },
        );
        span.record(attr::TOLERANCE_MET, v.met);
        self.emit_in(
            Event::ToleranceChecked {
                name: probe.name.clone(),
                met: v.met,
                verdict: v.label(),
                reason: v.reason.clone(),
                evidence: evidence.clone(),
            },
            span,
        );
        entry.evidence = Some(evidence);
    }

    /// Check the steady-state hypothesis once, in its own span under `parent`.
    async fn hypothesis(
        &self,
        phase: Phase,
        cancel: &Interrupt,
        parent: &Span,
    ) -> (HypothesisState, Flag) {
        let hypo = self
            .exp
            .hypothesis
            .as_ref()
            .expect("only called with a hypothesis");
        let title = self.vars().text(&hypo.title);
        let iteration = match phase {
            Phase::During(i) => Some(i as i64),
            _ => None,
        };
        let span = spans::hypothesis(
            parent,
            phase.as_str(),
            &self.redactor.text(&title),
            iteration,
        );
        if let Decision::Interrupt(reason) = self.controls.before_hypothesis(phase) {
            spans::interrupt(&span, &reason);
            self.emit_in(
                Event::ControlInterrupted {
                    reason: reason.clone(),
                },
                &span,
            );
            self.interrupt.trigger(format!("control {reason}"));
            spans::end(span, Some(&format!("interrupted by control {reason}")));
            return (
                HypothesisState {
                    steady_state_met: false,
                    probes: Vec::new(),
                },
                Flag::Interrupted,
            );
        }
        self.emit_in(Event::HypothesisStarted { title, phase }, &span);
        let mut state = HypothesisState {
            steady_state_met: true,
            probes: Vec::new(),
        };
        let mut flag = Flag::Ok;
        let mut failing = None;
        for probe in &hypo.probes {
            let (entry, f, acx) = self.execute(probe, phase, cancel, &span).await;
            let Some(mut entry) = entry else {
                self.finish(acx, None, Some("interrupted".into()));
                state.steady_state_met = false;
                flag = f;
                break;
            };
            if entry.status == ActivityStatus::Skipped {
                self.finish(acx, Some(&entry), None);
                state.probes.push(entry);
                continue;
            }
            if entry.failed() {
                entry.tolerance_met = Some(false);
                self.finish(acx, Some(&entry), None);
                state.steady_state_met = false;
                failing = Some(probe.name.clone());
                state.probes.push(entry);
                flag = if f == Flag::Ok { Flag::Failed } else { f };
                if f == Flag::Failed {
                    self.emit_in(
                        Event::Warning {
                            message: "Probe terminated unexpectedly, so its tolerance could not be validated".into(),
                        },
                        &span,
                    );
                }
                break;
            }
            entry.tolerance_met = Some(true);
            if matches!(self.opts.dry, Some(Dry::Probes | Dry::Activities)) {
                self.finish(acx, Some(&entry), None);
                state.probes.push(entry);
                continue;
            }
            let v = self.verdict(probe, &entry.output, cancel, &acx).await;
            if cancel.is_set() {
                // A probe tolerance was stopped: no verdict, the run is interrupted.
                entry.tolerance_met = Some(false);
                self.finish(acx, Some(&entry), Some("interrupted".into()));
                state.steady_state_met = false;
                state.probes.push(entry);
                flag = Flag::Interrupted;
                break;
            }
            self.report_verdict(probe, &v, &mut entry, &acx);
            // Inconclusive is not met: the steady state cannot be claimed.
            let (met, reason) = (v.met, v.reason);
            if !met {
                entry.tolerance_met = Some(false);
                self.finish(
                    acx,
                    Some(&entry),
                    Some(format!("tolerance not met: {reason}")),
                );
                state.steady_state_met = false;
                failing = Some(probe.name.clone());
                state.probes.push(entry);
                break;
            }
            self.finish(acx, Some(&entry), None);
            state.probes.push(entry);
        }
        span.record(attr::HYPOTHESIS_MET, state.steady_state_met);
        if flag != Flag::Interrupted {
            self.emit_in(
                Event::HypothesisEnded {
                    phase,
                    met: state.steady_state_met,
                    failing_probe: failing.clone(),
                },
                &span,
            );
        }
        self.controls.after_hypothesis(phase, &state);
        let error = match (flag, &failing) {
            (Flag::Interrupted, _) => Some("interrupted".to_string()),
            (_, Some(p)) => Some(format!("steady state not met: probe '{p}'")),
            _ => None,
        };
        spans::end(span, error.as_deref());
        (state, flag)
    }
}

/// Whether a control's decision means "skip this activity": a skip, or an interrupt
/// met during rollbacks (which controls cannot stop).
fn decision_skips(d: &Decision, phase: Phase) -> bool {
    matches!(d, Decision::Skip(_))
        || (matches!(d, Decision::Interrupt(_)) && phase == Phase::Rollback)
}

impl Shared {
    /// Check one safeguard probe; `Some(reason)` when it tripped (missed its tolerance
    /// or failed). Stopped by `cancel` like any activity.
    async fn safeguard_trips(&self, probe: &Activity, cancel: &Interrupt) -> Option<String> {
        let (entry, _, span) = self
            .execute(probe, Phase::Safeguard, cancel, &self.exp_span)
            .await;
        let Some(entry) = entry else {
            self.finish(span, None, None);
            return None;
        };
        if entry.status == ActivityStatus::Skipped || cancel.is_set() {
            self.finish(span, Some(&entry), None);
            return None;
        }
        if entry.failed() {
            self.finish(span, Some(&entry), None);
            let why = entry
                .exception
                .as_ref()
                .and_then(|e| e.last())
                .map(|e| e.trim().to_string());
            return Some(format!("the probe failed: {}", why.unwrap_or_default()));
        }
        let v = self.verdict(probe, &entry.output, cancel, &span).await;
        let mut entry = entry;
        self.report_verdict(probe, &v, &mut entry, &span);
        // A safeguard that cannot tell (no data, `on_no_data: inconclusive`) does not
        // stop the run: it says so and keeps watching.
        let (met, reason) = (v.met || v.inconclusive, v.reason);
        if met {
            self.finish(span, Some(&entry), None);
            None
        } else {
            self.finish(
                span,
                Some(&entry),
                Some(format!("safeguard tripped: {reason}")),
            );
            Some(reason)
        }
    }

    /// A safeguard tripped: say so, and interrupt the run (rollbacks follow the strategy).
    fn trip(&self, name: &str, reason: String) {
        spans::safeguard(&self.exp_span, name, &self.redactor.text(&reason));
        self.emit(Event::SafeguardTripped {
            name: name.to_string(),
            reason: reason.clone(),
        });
        // The reason travels on (activity errors, spans, the journal): masked once here.
        let why = format!("safeguard '{name}' tripped: {reason}");
        self.interrupt.trigger_from(
            super::interrupt::Source::Safeguard,
            self.redactor.text(&why).into_owned(),
        );
    }
}

/// Watch one background safeguard until `stop` (the rollbacks start) or a trip.
async fn watch_safeguard(shared: Arc<Shared>, guard: super::Safeguard, stop: Interrupt) {
    let cancel = shared.interrupt.clone();
    loop {
        if stop.is_set() || cancel.is_set() {
            return;
        }
        let tripped = tokio::select! {
            r = shared.safeguard_trips(&guard.probe, &cancel) => r,
            _ = stop.triggered() => return,
        };
        if let Some(reason) = tripped {
            shared.trip(&guard.probe.name, reason);
            return;
        }
        let super::SafeguardMode::Every(every) = guard.mode else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.triggered() => return,
            _ = cancel.triggered() => return,
        }
    }
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

async fn run_list(shared: Arc<Shared>, list: List, cancel: Interrupt, parent: Span) {
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
            let parent = parent.clone();
            // The task carries the run's dispatcher: its spans belong to this run.
            background.push(tokio::spawn(
                async move {
                    let (entry, flag, span) =
                        sh.execute_notify(&a, phase, &c, &parent, Some(tx)).await;
                    sh.finish(span, entry.as_ref(), None);
                    let mut st = sh.state();
                    if let Some(entry) = entry {
                        fill(&mut st, idx, entry);
                    }
                    if flag == Flag::Invalid && matches!(list, List::Method) {
                        st.status = Some(Status::Aborted);
                    }
                }
                .with_current_subscriber(),
            ));
            let _ = rx.await;
        } else {
            let (entry, flag, span) = shared.execute(&a, phase, &cancel, &parent).await;
            shared.finish(span, entry.as_ref(), None);
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

async fn continuous(shared: Arc<Shared>, stop: Interrupt, parent: Span) {
    let freq = shared.opts.hypothesis_frequency;
    shared.emit(Event::ContinuousStarted {
        frequency: freq.as_secs_f64(),
    });
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
        let (state, flag) = shared
            .hypothesis(Phase::During(iteration), &cancel, &parent)
            .await;
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
                spans::fail_fast(&parent, ratio);
                shared.emit_in(Event::FailFast { ratio }, &parent);
                shared.set_status(Status::Failed);
                break;
            }
        }
        if stop.is_set() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(freq) => {}
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
    ///
    /// The run's spans and events go to its own `tracing` dispatcher (see
    /// [`Trace`]), installed on this future and on every task it spawns.
    pub async fn run(mut self) -> Outcome {
        let layers = std::mem::take(&mut self.layers);
        let trace = Trace::new(self.tracer.take(), &self.trace_parent, layers);
        let dispatch = trace.dispatch().clone();
        self.run_traced(trace).with_subscriber(dispatch).await
    }

    async fn run_traced(self, trace: Trace) -> Outcome {
        let started = Utc::now();
        let clock = Instant::now();
        let initial_secrets = self.resolved.secrets.clone();
        let masked = self.masked.clone();
        let redactor = Redactor::new(
            secret_values(&initial_secrets)
                .into_iter()
                .chain(masked.iter().cloned()),
        );
        let prometheus = self.options.prometheus.clone();
        let live = self.live.clone().unwrap_or_default();
        live.set(self.resolved.configuration, self.resolved.secrets);
        let python = self.python.clone().unwrap_or_else(|| {
            crate::provider::python::worker::Worker::new(self.processes.clone())
        });
        let mut shared = Shared {
            exp: self.experiment,
            opts: self.options,
            live,
            redactor,
            controls: self.controls,
            interrupt: self.interrupt,
            http: Clients::default(),
            env: self.env,
            trace,
            processes: self.processes,
            exp_span: Span::none(),
            baggage: Vec::new(),
            facts: provider::RunFacts {
                run_id: self.run_id.clone(),
                trace_id: None,
                started,
                slo: self.slo,
                method: Default::default(),
                prometheus,
                python,
            },
            state: Mutex::new(State::default()),
        };
        let title = shared.vars().text(&shared.exp.title);
        let safe_title = shared.redactor.text(&title).into_owned();
        shared.baggage = vec![
            (propagation::BAGGAGE_RUN_ID.to_string(), self.run_id.clone()),
            (
                propagation::BAGGAGE_EXPERIMENT.to_string(),
                safe_title.clone(),
            ),
        ];
        let tags = shared
            .exp
            .raw
            .get("tags")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            });
        shared.exp_span = spans::experiment(
            &self.trace_parent,
            &self.run_id,
            &safe_title,
            shared.opts.hypothesis_strategy.as_str(),
            shared.opts.rollback_strategy.as_str(),
            tags.as_deref(),
            shared.opts.dry.map(|d| d.as_str()),
        );
        let trace_id = propagation::ids(&shared.trace.context(&shared.exp_span)).map(|(t, _)| t);
        shared.facts.trace_id = trace_id.clone();
        let run_info = RunInfo {
            run_id: self.run_id.clone(),
            title: safe_title.clone(),
            trace_id: trace_id.clone(),
            experiment: shared.redactor.value(&shared.exp.raw),
            labels: self.labels.clone(),
            experiment_ref: crate::experiment::labels::experiment_ref(&shared.exp.raw),
            started,
            ended: None,
            duration: None,
            journal: self.journal.clone(),
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
            let (entry, flag, span) = shared
                .execute(
                    probe,
                    Phase::Configuration,
                    &shared.interrupt.clone(),
                    &shared.exp_span.clone(),
                )
                .await;
            shared.finish(span, entry.as_ref(), None);
            match flag {
                Flag::Ok => {
                    shared
                        .live
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
        // Safeguards: blocking ones first (a miss stops the run before anything is
        // disturbed), then the background ones watch until the rollbacks.
        let guards_stop = Interrupt::new();
        let mut watchers = Vec::new();
        if proceed {
            for g in self
                .safeguards
                .iter()
                .filter(|g| g.mode == super::SafeguardMode::Blocking)
            {
                if let Some(reason) = shared.safeguard_trips(&g.probe, &cancel).await {
                    shared.trip(&g.probe.name, reason);
                    break;
                }
            }
            for g in self
                .safeguards
                .iter()
                .filter(|g| g.mode != super::SafeguardMode::Blocking)
            {
                watchers.push(tokio::spawn(
                    watch_safeguard(shared.clone(), g.clone(), guards_stop.clone())
                        .with_current_subscriber(),
                ));
            }
        }
        if cancel.is_set() {
            shared.set_status(Status::Interrupted);
            proceed = false;
        }
        if proceed && has_hypothesis && strategy.before() {
            let (state, flag) = shared
                .hypothesis(Phase::Before, &cancel, &shared.exp_span)
                .await;
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
            let method_span = spans::method(&shared.exp_span);
            let looping = (has_hypothesis && strategy.during()).then(|| {
                tokio::spawn(
                    continuous(shared.clone(), stop.clone(), method_span.clone())
                        .with_current_subscriber(),
                )
            });
            shared
                .facts
                .method
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .started = Some(Utc::now());
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
                _ => {
                    run_list(
                        shared.clone(),
                        List::Method,
                        cancel.clone(),
                        method_span.clone(),
                    )
                    .await
                }
            }
            shared
                .facts
                .method
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .ended = Some(Utc::now());
            shared.emit(Event::MethodEnded {
                interrupted: cancel.is_set(),
            });
            shared.controls.after_method();
            stop.trigger("method ended");
            if let Some(h) = looping {
                let _ = h.await;
            }
            let method_failed = matches!(
                shared.status(),
                Some(Status::Aborted | Status::Failed | Status::Interrupted)
            ) || cancel.is_set();
            let error = method_failed.then(|| match shared.status() {
                Some(s) if s != Status::Completed => format!("method {}", s.as_str()),
                _ => "method interrupted".to_string(),
            });
            spans::end(method_span, error.as_deref());
            if cancel.is_set() {
                shared.set_status(Status::Interrupted);
            }
            let st = shared.status();
            if !matches!(st, Some(Status::Interrupted | Status::Aborted))
                && has_hypothesis
                && strategy.after()
            {
                let (state, flag) = shared
                    .hypothesis(Phase::After, &cancel, &shared.exp_span)
                    .await;
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
        // The safeguards guard the hypothesis and the method, not the rollbacks.
        guards_stop.trigger("rollbacks");
        for w in watchers {
            let _ = w.await;
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

        // The abort latency: from the interrupt (a safeguard's trip, the kill switch, a
        // signal) to this point, where the rollbacks start (or are skipped).
        let abort_latency_ms = (status == Status::Interrupted)
            .then(|| cancel.triggered_at())
            .flatten()
            .map(|at| at.elapsed().as_secs_f64() * 1000.0);
        if let Some(ms) = abort_latency_ms {
            shared.exp_span.record(attr::ABORT_LATENCY_MS, ms);
        }
        let strategy = shared.opts.rollback_strategy;
        if cancel.rollbacks_forbidden() {
            shared.emit(Event::RollbacksSkipped {
                strategy: strategy.to_string(),
                reason: "chaoslib.exit.exit_ungracefully() asked to stop at once".to_string(),
            });
        } else if strategy.plays(status, deviated) {
            shared.emit(Event::RollbacksStarted);
            if shared.exp.rollbacks.is_empty() {
                shared.emit(Event::NoRollbacks);
            }
            // Rollbacks are not stopped by the first interrupt: that is the point of
            // playing them. A second signal ends the process (see the CLI).
            cancel.mark_rollbacks();
            shared.controls.before_rollbacks();
            let rb_span = spans::rollbacks(&shared.exp_span);
            run_list(
                shared.clone(),
                List::Rollbacks,
                Interrupt::new(),
                rb_span.clone(),
            )
            .await;
            let failed = shared
                .state()
                .rollbacks
                .iter()
                .flatten()
                .filter(|e| e.failed())
                .count();
            let error = (failed > 0).then(|| format!("{failed} rollback(s) failed"));
            spans::end(rb_span, error.as_deref());
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
        // What the controls found during the run (alerts, …): asked together, waited
        // for within one limit, recorded before the experiment span closes.
        let findings = match tokio::time::timeout(
            crate::control::FINDINGS_LIMIT,
            shared.controls.findings(&run_info),
        )
        .await
        {
            Ok(f) => f,
            Err(_) => {
                shared.emit(Event::Warning {
                    message: format!(
                        "the controls' findings were not ready within {:?}: not recorded",
                        crate::control::FINDINGS_LIMIT
                    ),
                });
                crate::control::Findings::default()
            }
        };
        let mut contributed = serde_json::Map::new();
        for (key, value) in findings.journal.iter().cloned() {
            if FaultlineExtension::KEYS.contains(&key.as_str()) || contributed.contains_key(&key) {
                shared.emit(Event::Warning {
                    message: format!(
                        "a control's finding '{key}' is already in the journal's extension: not recorded"
                    ),
                });
            } else {
                contributed.insert(key, value);
            }
        }
        spans::findings(&shared.exp_span, &findings);
        shared.emit(Event::RunEnded { status, deviated });
        let exp_span = &shared.exp_span;
        exp_span.record(attr::EXPERIMENT_STATUS, status.as_str());
        let workers = shared.facts.python.started();
        if workers > 0 {
            // As i64: OpenTelemetry has no unsigned integers (a u64 becomes text).
            let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            exp_span.record(
                attr::PYTHON_WORKERS,
                count(usize::try_from(workers).unwrap_or(usize::MAX)),
            );
            exp_span.record(
                attr::PYTHON_WORKER_RESTARTS,
                count(shared.facts.python.restarts().len()),
            );
        }
        exp_span.record(attr::EXPERIMENT_DEVIATED, deviated);
        if status == Status::Interrupted {
            spans::interrupted(
                exp_span,
                &shared.redactor.text(&cancel.reason().unwrap_or_default()),
                cancel.source().map(super::InterruptSource::as_str),
            );
        }
        let error = match (status, deviated) {
            (Status::Completed, false) => None,
            (Status::Completed, true) => Some("the steady state deviated".to_string()),
            (s, _) => Some(format!("experiment {}", s.as_str())),
        };
        spans::end(exp_span.clone(), error.as_deref());
        // The run's end, as the journal records it, is taken before the controls'
        // last hook (the Chaos Toolkit's journal has its `end` when `after_experiment`
        // sees it), so a control reports the very times the journal keeps.
        let ended = Utc::now();
        let duration = clock.elapsed().as_secs_f64();
        let end_info = RunInfo {
            ended: Some(ended),
            duration: Some(duration),
            ..run_info.clone()
        };
        shared
            .controls
            .after_experiment(&end_info, status, deviated);
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
        let extension = FaultlineExtension {
            version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: self.run_id.clone(),
            trace_id: trace_id.clone(),
            hypothesis_strategy: shared.opts.hypothesis_strategy.as_str().to_string(),
            rollback_strategy: shared.opts.rollback_strategy.as_str().to_string(),
            interrupted_by: if status == Status::Interrupted {
                cancel.reason()
            } else {
                None
            },
            abort_latency_ms,
            python_worker: (shared.facts.python.started() > 0).then(|| {
                serde_json::json!({
                    "interpreter": shared.facts.python.python(),
                    "started": shared.facts.python.started(),
                    "restarts": shared.facts.python.restarts(),
                })
            }),
            contributed,
        };
        // A Python control may have set secrets during the run: the journal masks
        // those too.
        let now = shared.live.get();
        let final_redactor = (*now.secrets != initial_secrets).then(|| {
            Redactor::new(
                secret_values(&initial_secrets)
                    .into_iter()
                    .chain(secret_values(&now.secrets))
                    .chain(masked.iter().cloned()),
            )
        });
        let record = RunRecord::build(
            RecordParts {
                experiment,
                start: timefmt::iso(started),
                end: timefmt::iso(ended),
                duration,
                status,
                deviated,
                before: before.as_ref(),
                after: after.as_ref(),
                during: &state.during,
                run: &run,
                rollbacks: &rollbacks,
                extension,
            },
            final_redactor.as_ref().unwrap_or(&shared.redactor),
        );
        Outcome {
            record,
            status,
            deviated,
            trace_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{ActivityInfo, Hook};
    use crate::run::RunOptions;

    /// Records every hook it sees, in order.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Recorder {
        fn push(&self, s: String) {
            self.0.lock().unwrap().push(s);
        }
    }

    impl Control for Recorder {
        fn configure(&self, _: &RunInfo) {
            self.push("configure".into());
        }
        fn before_experiment<'a>(&'a self, _: &'a RunInfo) -> Hook<'a> {
            self.push("before_experiment".into());
            Box::pin(async { Decision::Continue })
        }
        fn before_hypothesis(&self, p: Phase) -> Decision {
            self.push(format!("before_hypothesis {}", p.as_str()));
            Decision::Continue
        }
        fn after_hypothesis(&self, p: Phase, _: &HypothesisState) {
            self.push(format!("after_hypothesis {}", p.as_str()));
        }
        fn before_method(&self) -> Decision {
            self.push("before_method".into());
            Decision::Continue
        }
        fn after_method(&self) {
            self.push("after_method".into());
        }
        fn before_rollbacks(&self) {
            self.push("before_rollbacks".into());
        }
        fn after_rollbacks(&self) {
            self.push("after_rollbacks".into());
        }
        fn before_activity<'a>(&'a self, a: &'a ActivityInfo<'a>) -> Hook<'a> {
            self.push(format!("before_activity {}", a.name));
            if a.name == "skipped" {
                return Box::pin(async { Decision::Skip("not today".into()) });
            }
            Box::pin(async { Decision::Continue })
        }
        fn after_activity(&self, a: &ActivityInfo<'_>, e: &RunEntry) {
            self.push(format!("after_activity {} {}", a.name, e.status));
        }
        fn findings<'a>(&'a self, _: &'a RunInfo) -> crate::control::FindingsHook<'a> {
            self.push("findings".into());
            Box::pin(async {
                crate::control::Findings {
                    journal: vec![
                        ("seen".into(), serde_json::json!(["x"])),
                        // faultline's own key: refused, never written twice.
                        ("run_id".into(), serde_json::json!("forged")),
                    ],
                    ..Default::default()
                }
            })
        }
        fn after_experiment(&self, _: &RunInfo, s: Status, _: bool) {
            self.push(format!("after_experiment {}", s.as_str()));
        }
        fn cleanup(&self) {
            self.push("cleanup".into());
        }
    }

    /// Findings late beyond the limit.
    struct Slow;
    impl Control for Slow {
        fn findings<'a>(&'a self, _: &'a RunInfo) -> crate::control::FindingsHook<'a> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                crate::control::Findings {
                    journal: vec![("late".into(), serde_json::json!(1))],
                    ..Default::default()
                }
            })
        }
    }

    #[tokio::test]
    async fn findings_are_waited_for_within_the_limit_only() {
        let doc = serde_json::json!({"title": "t", "description": "d", "method": []});
        let runner = Runner {
            experiment: crate::experiment::parse(&doc).unwrap(),
            options: RunOptions::default(),
            resolved: Resolved::default(),
            controls: Arc::new(Slow),
            interrupt: Interrupt::new(),
            run_id: "r".into(),
            env: Vec::new(),
            tracer: None,
            trace_parent: Context::new(),
            safeguards: Vec::new(),
            layers: Vec::new(),
            processes: Default::default(),
            slo: Default::default(),
            python: None,
            live: None,
            labels: Default::default(),
            journal: None,
            masked: Vec::new(),
        };
        let started = Instant::now();
        let out = runner.run().await;
        assert_eq!(out.status, Status::Completed);
        let took = started.elapsed();
        assert!(
            took < crate::control::FINDINGS_LIMIT + Duration::from_secs(2),
            "{took:?}"
        );
        assert!(out.record.faultline().unwrap().contributed.is_empty());
    }

    /// Two runs at once in one process, each with its own telemetry: every span lands
    /// in its own run's trace file, under its own experiment span, background tasks
    /// included (the dispatcher belongs to the run, not to the process).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_concurrent_runs_keep_their_spans_apart() {
        use crate::telemetry::{Telemetry, TelemetryConfig};
        let dir = std::env::temp_dir().join(format!(
            "faultline-two-runs-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |tag: &'static str| {
            let dir = dir.clone();
            async move {
                let act = |name: String, background: bool| {
                    serde_json::json!({"type": "action", "name": name, "background": background,
                        "provider": {"type": "process", "path": "sh", "arguments": "-c 'sleep 0.05'"}})
                };
                let doc = serde_json::json!({"title": tag, "description": "d",
                    "method": [act(format!("{tag}-bg1"), true), act(format!("{tag}-bg2"), true),
                               act(format!("{tag}-fg"), false)],
                    "rollbacks": [act(format!("{tag}-rb"), false)]});
                let telemetry = Telemetry::init(
                    TelemetryConfig::new(tag, dir.join(format!("{tag}.json"))),
                    &|_: &str| None,
                )
                .unwrap();
                let runner = Runner {
                    experiment: crate::experiment::parse(&doc).unwrap(),
                    options: RunOptions::default(),
                    resolved: Resolved::default(),
                    controls: Arc::new(Vec::<Box<dyn Control>>::new()),
                    interrupt: Interrupt::new(),
                    run_id: tag.into(),
                    env: Vec::new(),
                    tracer: Some(telemetry.tracer()),
                    trace_parent: Context::new(),
                    safeguards: Vec::new(),
                    layers: Vec::new(),
                    processes: Default::default(),
                    slo: Default::default(),
                    python: None,
                    live: None,
                    labels: Default::default(),
                    journal: None,
                    masked: Vec::new(),
                };
                let out = runner.run().await;
                let report = telemetry.shutdown().await;
                (out, report)
            }
        };
        let ((out_a, rep_a), (out_b, rep_b)) = tokio::join!(run("a"), run("b"));
        assert_eq!(out_a.status, Status::Completed);
        assert_eq!(out_b.status, Status::Completed);
        // experiment, method, 3 actions, rollbacks, 1 action
        assert_eq!((rep_a.spans, rep_b.spans), (7, 7));
        for (tag, out, other) in [("a", &out_a, "b-"), ("b", &out_b, "a-")] {
            let text = std::fs::read_to_string(dir.join(format!("{tag}.trace.json"))).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap();
            let spans: Vec<&Value> = v["resourceSpans"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["scopeSpans"].as_array().unwrap())
                .flat_map(|s| s["spans"].as_array().unwrap())
                .collect();
            assert_eq!(spans.len(), 7, "{text}");
            let trace_id = out.trace_id.clone().unwrap();
            let ids: Vec<&str> = spans
                .iter()
                .map(|s| s["spanId"].as_str().unwrap())
                .collect();
            for s in &spans {
                let name = s["name"].as_str().unwrap();
                assert_eq!(s["traceId"], trace_id.as_str(), "{name}");
                assert!(!name.contains(other), "{name} in run {tag}");
                let parent = s["parentSpanId"].as_str().unwrap_or_default();
                if name == spans::name::EXPERIMENT {
                    assert!(parent.is_empty());
                } else {
                    assert!(
                        ids.contains(&parent),
                        "{name}: parent {parent} not in run {tag}"
                    );
                }
            }
            let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
            for want in ["bg1", "bg2", "fg", "rb"] {
                assert!(
                    names.contains(&format!("action {tag}-{want}").as_str()),
                    "{names:?}"
                );
            }
        }
        assert_ne!(out_a.trace_id, out_b.trace_id);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every lifecycle event reaches the run's layers as a `tracing` event inside the
    /// span of its step, with its name, level, message, fields and ids.
    #[tokio::test]
    async fn lifecycle_events_are_tracing_events_inside_their_spans() {
        use tracing_subscriber::layer::Context as LayerCx;
        /// (event, faultline level, parent span's name, fields, has ids)
        type Seen = Vec<(String, String, String, Value, bool)>;
        #[derive(Clone, Default)]
        struct Collect(Arc<Mutex<Seen>>);
        #[derive(Default)]
        struct Fields(std::collections::HashMap<String, String>);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                self.0.insert(f.name().into(), v.into());
            }
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.insert(f.name().into(), format!("{v:?}"));
            }
        }
        impl<S> tracing_subscriber::Layer<S> for Collect
        where
            S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
        {
            fn on_event(&self, e: &tracing::Event<'_>, cx: LayerCx<'_, S>) {
                if e.metadata().target() != crate::event::TARGET {
                    return;
                }
                let mut f = Fields::default();
                e.record(&mut f);
                let parent = e
                    .parent()
                    .and_then(|id| cx.span(id))
                    .map(|s| s.name().to_string())
                    .unwrap_or_default();
                let get = |k: &str| f.0.get(k).cloned().unwrap_or_default();
                self.0.lock().unwrap().push((
                    get("event"),
                    get("level"),
                    parent,
                    serde_json::from_str(&get("fields")).unwrap_or(Value::Null),
                    f.0.contains_key("trace_id") && f.0.contains_key("span_id"),
                ));
            }
        }
        let doc = serde_json::json!({"title": "t", "description": "d",
            "steady-state-hypothesis": {"title": "h", "probes": [
                {"type": "probe", "name": "p", "tolerance": 0, "provider": {"type": "process", "path": "true"}}]},
            "method": [{"type": "action", "name": "a",
                "provider": {"type": "process", "path": "sleep", "arguments": "5", "timeout": 0.05}}]});
        let seen = Collect::default();
        let runner = Runner {
            experiment: crate::experiment::parse(&doc).unwrap(),
            options: RunOptions::default(),
            resolved: Resolved::default(),
            controls: Arc::new(Vec::<Box<dyn Control>>::new()),
            interrupt: Interrupt::new(),
            run_id: "r".into(),
            env: Vec::new(),
            tracer: None,
            trace_parent: Context::new(),
            safeguards: Vec::new(),
            layers: vec![Box::new(seen.clone())],
            processes: Default::default(),
            slo: Default::default(),
            python: None,
            live: None,
            labels: Default::default(),
            journal: None,
            masked: Vec::new(),
        };
        runner.run().await;
        let seen = seen.0.lock().unwrap().clone();
        let find = |event: &str| {
            seen.iter()
                .find(|s| s.0 == event)
                .unwrap_or_else(|| panic!("no {event} in {seen:#?}"))
        };
        for (event, level, span) in [
            ("experiment.started", "INFO", spans::name::EXPERIMENT),
            ("hypothesis.started", "INFO", spans::name::HYPOTHESIS),
            ("activity.started", "INFO", spans::name::ACTIVITY),
            ("tolerance.checked", "DEBUG", spans::name::ACTIVITY),
            ("hypothesis.met", "INFO", spans::name::HYPOTHESIS),
            ("method.started", "INFO", spans::name::EXPERIMENT),
            ("activity.failed", "ERROR", spans::name::ACTIVITY),
            ("experiment.ended", "INFO", spans::name::EXPERIMENT),
        ] {
            let s = find(event);
            assert_eq!(
                (s.1.as_str(), s.2.as_str()),
                (level, span),
                "{event}: {s:?}"
            );
            assert!(s.4, "{event} has no ids");
        }
        assert_eq!(find("activity.failed").3["activity"], "a");
        assert_eq!(find("experiment.ended").3["status"], "completed");
        assert_eq!(
            seen.iter().filter(|s| s.0 == "activity.started").count(),
            3,
            "{seen:#?}"
        );
    }

    #[tokio::test]
    async fn hooks_are_called_in_the_documented_order_and_skip_works() {
        let doc = serde_json::json!({"title": "t", "description": "d",
            "steady-state-hypothesis": {"title": "h", "probes": [
                {"type": "probe", "name": "p", "tolerance": 0, "provider": {"type": "process", "path": "true"}}]},
            "method": [
                {"type": "action", "name": "a", "provider": {"type": "process", "path": "true"}},
                {"type": "action", "name": "skipped", "provider": {"type": "process", "path": "false"}}],
            "rollbacks": [{"type": "action", "name": "r", "provider": {"type": "process", "path": "true"}}]});
        let recorder = Arc::new(Recorder::default());
        let runner = Runner {
            experiment: crate::experiment::parse(&doc).unwrap(),
            options: RunOptions::default(),
            resolved: Resolved::default(),
            controls: recorder.clone(),
            interrupt: Interrupt::new(),
            run_id: "r".into(),
            env: Vec::new(),
            tracer: None,
            trace_parent: Context::new(),
            safeguards: Vec::new(),
            layers: Vec::new(),
            processes: Default::default(),
            slo: Default::default(),
            python: None,
            live: None,
            labels: Default::default(),
            journal: None,
            masked: Vec::new(),
        };
        let out = runner.run().await;
        assert_eq!(out.status, Status::Completed);
        assert_eq!(out.record.run[1].status, ActivityStatus::Skipped);
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                "configure",
                "before_experiment",
                "before_hypothesis before",
                "before_activity p",
                "after_activity p succeeded",
                "after_hypothesis before",
                "before_method",
                "before_activity a",
                "after_activity a succeeded",
                "before_activity skipped",
                "after_activity skipped skipped",
                "after_method",
                "before_hypothesis after",
                "before_activity p",
                "after_activity p succeeded",
                "after_hypothesis after",
                "before_rollbacks",
                "before_activity r",
                "after_activity r succeeded",
                "after_rollbacks",
                "findings",
                "after_experiment completed",
                "cleanup",
            ]
        );
        let ext = out.record.faultline().unwrap();
        assert_eq!(ext.run_id, "r");
        assert_eq!(
            serde_json::Value::Object(ext.contributed.clone()),
            serde_json::json!({"seen": ["x"]})
        );
    }
}
