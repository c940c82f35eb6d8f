//! Typed lifecycle events: the one stream the runner emits and observers consume.
//!
//! The runner never formats a line; it emits an [`Event`] as a `tracing` event inside
//! the span it belongs to ([`Event::trace_in`], target [`TARGET`]): the console and
//! the log sinks are layers on the run's subscriber that consume these. Each event
//! knows its name
//! (stable, documented in `docs/telemetry.md`), its level and its human message (the
//! Chaos Toolkit's wording where it has one), so the console, the JSON log format and
//! the sinks all say the same thing.

use crate::redact::Redactor;
use crate::run::{Phase, Status};
use serde_json::{json, Value};

/// The span an event belongs to, for log records that join their trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceIds {
    /// The trace id, 32 lower-case hex digits.
    pub trace_id: String,
    /// The span id, 16 lower-case hex digits.
    pub span_id: String,
}

/// Severity, as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Details shown with `--verbose`.
    Debug,
    /// Normal progress.
    Info,
    /// Something the user should look at.
    Warning,
    /// An activity failed.
    Error,
    /// The experiment cannot go on as planned.
    Critical,
}

/// The `tracing` target of lifecycle events. Layers that render them (the console)
/// select them by it; the OpenTelemetry layer leaves them out (a span's events there
/// are the `chaos.*` span events of `crate::run::spans`).
pub const TARGET: &str = "faultline::lifecycle";

/// The fields of a lifecycle event as a `tracing` event, in this order.
pub mod field {
    /// The stable event name ([`super::Event::name`]).
    pub const EVENT: &str = "event";
    /// faultline's level ([`super::Level::as_str`]): finer than `tracing`'s (CRITICAL).
    pub const LEVEL: &str = "level";
    /// The human message ([`super::Event::message`]), formatted only when read.
    pub const MESSAGE: &str = "message";
    /// The structured fields ([`super::Event::fields`]) as a JSON object, formatted
    /// only when read.
    pub const FIELDS: &str = "fields";
    /// The trace id of the span the event belongs to.
    pub const TRACE_ID: &str = "trace_id";
    /// That span's id.
    pub const SPAN_ID: &str = "span_id";
}

/// Every name [`Event::name`] returns. A layer reads an event's name back from its
/// `tracing` field as a borrowed string; [`static_name`] gives it the `&'static str`
/// a [`crate::sink::Record`] keeps.
pub const NAMES: &[&str] = &[
    "experiment.started",
    "experiment.strategies",
    "experiment.dry",
    "hypothesis.started",
    "hypothesis.met",
    "hypothesis.not_met",
    "hypothesis.continuous.started",
    "hypothesis.continuous.ended",
    "hypothesis.none",
    "method.started",
    "method.empty",
    "method.ended",
    "activity.started",
    "activity.succeeded",
    "activity.failed",
    "tolerance.checked",
    "activity.output",
    "activity.skipped",
    "control.interrupt",
    "safeguard.tripped",
    "activity.pause",
    "rollbacks.started",
    "rollbacks.none",
    "rollbacks.skipped",
    "experiment.interrupted",
    "hypothesis.fail_fast",
    "warning",
    "experiment.ended",
];

/// The lifecycle event name equal to `name`, as the `&'static str` of [`NAMES`]
/// (`None`: not a lifecycle event's name).
pub fn static_name(name: &str) -> Option<&'static str> {
    NAMES.iter().find(|n| **n == name).copied()
}

impl Level {
    /// The level named by [`Level::as_str`].
    pub fn parse(s: &str) -> Option<Level> {
        [
            Level::Debug,
            Level::Info,
            Level::Warning,
            Level::Error,
            Level::Critical,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }

    /// Upper-case name, as in `[2026-11-21 10:00:00 INFO]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
}

/// One lifecycle event.
#[derive(Debug, Clone)]
pub enum Event {
    /// The experiment is about to run.
    RunStarted { title: String, run_id: String },
    /// The strategies in force.
    Strategies {
        hypothesis: String,
        rollbacks: String,
    },
    /// A dry mode is active.
    DryRun { mode: String },
    /// The hypothesis starts being checked.
    HypothesisStarted { title: String, phase: Phase },
    /// The hypothesis was checked.
    HypothesisEnded {
        phase: Phase,
        met: bool,
        failing_probe: Option<String>,
    },
    /// A continuous hypothesis starts.
    ContinuousStarted { frequency: f64 },
    /// A continuous hypothesis ended.
    ContinuousEnded {
        iterations: usize,
        deviations: usize,
    },
    /// No hypothesis is declared.
    NoHypothesis,
    /// The method starts.
    MethodStarted,
    /// The method is empty.
    NoActivities,
    /// The method ended: completed, or cut short by an interrupt (a signal, a control,
    /// a safeguard, fail-fast).
    MethodEnded { interrupted: bool },
    /// An activity starts.
    ActivityStarted {
        kind: &'static str,
        name: String,
        background: bool,
        phase: Phase,
    },
    /// An activity ended.
    ActivityEnded {
        name: String,
        phase: Phase,
        succeeded: bool,
        error: Option<String>,
        output: Value,
    },
    /// A line a provider printed (a Python function's stderr).
    ProviderOutput { name: String, line: String },
    /// A control skipped an activity.
    ActivitySkipped { name: String, reason: String },
    /// A control interrupted the run.
    ControlInterrupted { reason: String },
    /// A safeguard probe missed its tolerance (or failed): the run is interrupted.
    SafeguardTripped { name: String, reason: String },
    /// A tolerance was checked.
    ToleranceChecked {
        name: String,
        met: bool,
        /// `met`, `not_met` or `inconclusive`.
        verdict: &'static str,
        reason: String,
        /// Expected, actual, and for PromQL the query and its time (see the journal).
        evidence: Value,
    },
    /// A pause starts.
    Pause {
        seconds: f64,
        before: bool,
        skipped: bool,
    },
    /// Rollbacks start.
    RollbacksStarted,
    /// There are no rollbacks.
    NoRollbacks,
    /// Rollbacks are not played, and why.
    RollbacksSkipped { strategy: String, reason: String },
    /// The run was interrupted.
    Interrupted { reason: String },
    /// Fail-fast stopped the method.
    FailFast { ratio: f64 },
    /// Something worth a warning.
    Warning { message: String },
    /// The run ended.
    RunEnded { status: Status, deviated: bool },
}

/// Formats on demand: a field nobody reads costs nothing.
struct Lazy<F>(F);

impl<F: Fn(&mut std::fmt::Formatter<'_>) -> std::fmt::Result> std::fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (self.0)(f)
    }
}

impl Event {
    /// This event as a `tracing` event (target [`TARGET`], fields [`field`]) inside
    /// `span`, the step it belongs to, whose ids are `trace`. Dispatched to the
    /// current subscriber: the run's own.
    pub fn trace_in(&self, span: &tracing::Span, trace: Option<&TraceIds>) {
        let message = Lazy(|f: &mut std::fmt::Formatter<'_>| f.write_str(&self.message()));
        let fields = Lazy(|f: &mut std::fmt::Formatter<'_>| write!(f, "{}", self.fields()));
        let trace_id = trace.map(|t| t.trace_id.as_str());
        let span_id = trace.map(|t| t.span_id.as_str());
        // A `tracing` level is fixed per call site: one site per level.
        macro_rules! at {
            ($level:expr) => {
                tracing::event!(target: TARGET, parent: span, $level, {
                    { field::EVENT } = self.name(),
                    { field::LEVEL } = self.level().as_str(),
                    { field::MESSAGE } = %message,
                    { field::FIELDS } = %fields,
                    { field::TRACE_ID } = trace_id,
                    { field::SPAN_ID } = span_id,
                })
            };
        }
        match self.level() {
            Level::Debug => at!(tracing::Level::DEBUG),
            Level::Info => at!(tracing::Level::INFO),
            Level::Warning => at!(tracing::Level::WARN),
            Level::Error | Level::Critical => at!(tracing::Level::ERROR),
        }
    }

    /// The stable event name (documented in `docs/telemetry.md`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "experiment.started",
            Event::Strategies { .. } => "experiment.strategies",
            Event::DryRun { .. } => "experiment.dry",
            Event::HypothesisStarted { .. } => "hypothesis.started",
            Event::HypothesisEnded { met: true, .. } => "hypothesis.met",
            Event::HypothesisEnded { met: false, .. } => "hypothesis.not_met",
            Event::ContinuousStarted { .. } => "hypothesis.continuous.started",
            Event::ContinuousEnded { .. } => "hypothesis.continuous.ended",
            Event::NoHypothesis => "hypothesis.none",
            Event::MethodStarted => "method.started",
            Event::NoActivities => "method.empty",
            Event::MethodEnded { .. } => "method.ended",
            Event::ActivityStarted { .. } => "activity.started",
            Event::ActivityEnded {
                succeeded: true, ..
            } => "activity.succeeded",
            Event::ActivityEnded {
                succeeded: false, ..
            } => "activity.failed",
            Event::ToleranceChecked { .. } => "tolerance.checked",
            Event::ProviderOutput { .. } => "activity.output",
            Event::ActivitySkipped { .. } => "activity.skipped",
            Event::ControlInterrupted { .. } => "control.interrupt",
            Event::SafeguardTripped { .. } => "safeguard.tripped",
            Event::Pause { .. } => "activity.pause",
            Event::RollbacksStarted => "rollbacks.started",
            Event::NoRollbacks => "rollbacks.none",
            Event::RollbacksSkipped { .. } => "rollbacks.skipped",
            Event::Interrupted { .. } => "experiment.interrupted",
            Event::FailFast { .. } => "hypothesis.fail_fast",
            Event::Warning { .. } => "warning",
            Event::RunEnded { .. } => "experiment.ended",
        }
    }

    /// Severity.
    pub fn level(&self) -> Level {
        match self {
            Event::ActivityEnded {
                succeeded: false, ..
            } => Level::Error,
            Event::ActivityEnded { .. } | Event::ToleranceChecked { met: true, .. } => Level::Debug,
            Event::ToleranceChecked { met: false, .. } => Level::Warning,
            Event::HypothesisEnded {
                met: false,
                phase: Phase::During(_),
                ..
            } => Level::Warning,
            Event::HypothesisEnded { met: false, .. }
            | Event::Interrupted { .. }
            | Event::FailFast { .. } => Level::Critical,
            Event::Warning { .. }
            | Event::DryRun { .. }
            | Event::RollbacksSkipped { .. }
            | Event::ActivitySkipped { .. } => Level::Warning,
            Event::ControlInterrupted { .. } | Event::SafeguardTripped { .. } => Level::Critical,
            Event::ContinuousEnded { .. } => Level::Info,
            _ => Level::Info,
        }
    }

    /// The human message (the Chaos Toolkit's words where it has them).
    pub fn message(&self) -> String {
        match self {
            Event::RunStarted { title, .. } => format!("Running experiment: {title}"),
            Event::Strategies { hypothesis, rollbacks } => {
                format!("Steady-state strategy: {hypothesis}, rollbacks strategy: {rollbacks}")
            }
            Event::DryRun { mode } => format!("Running experiment with dry {mode}"),
            Event::HypothesisStarted { title, .. } => format!("Steady state hypothesis: {title}"),
            Event::HypothesisEnded { met: true, phase: Phase::Before, .. } => {
                "Steady state hypothesis is met, we can carry on!".into()
            }
            Event::HypothesisEnded { met: true, .. } => "Steady state hypothesis is met!".into(),
            Event::HypothesisEnded { met: false, phase: Phase::During(_), failing_probe, .. } => format!(
                "Continuous steady state probe '{}' is not in the given tolerance",
                failing_probe.as_deref().unwrap_or("?")
            ),
            Event::HypothesisEnded { met: false, failing_probe, .. } => format!(
                "Steady state probe '{}' is not in the given tolerance so failing this experiment",
                failing_probe.as_deref().unwrap_or("?")
            ),
            Event::ContinuousStarted { frequency } => {
                format!("Executing the steady-state hypothesis continuously every {frequency} seconds")
            }
            Event::ContinuousEnded { iterations, deviations } => format!(
                "Continuous steady state hypothesis terminated ({iterations} checks, {deviations} not met)"
            ),
            Event::NoHypothesis => "No steady state hypothesis defined. That's ok, just exploring.".into(),
            Event::MethodStarted => "Playing your experiment's method now...".into(),
            Event::NoActivities => "No declared activities, let's move on.".into(),
            // The Chaos Toolkit says "Method completed" either way, which contradicts an
            // interrupt printed just before.
            Event::MethodEnded { interrupted: false } => "Method completed".into(),
            Event::MethodEnded { interrupted: true } => {
                "Method interrupted: the activities after the interrupted one did not run".into()
            }
            Event::ActivityStarted { kind, name, background, .. } => {
                format!("{kind}: {name}{}", if *background { " [in background]" } else { "" })
            }
            Event::ActivityEnded { succeeded: false, error, .. } => {
                format!("  => failed: {}", error.as_deref().unwrap_or("unknown error"))
            }
            Event::ActivityEnded { output, .. } => {
                if output.is_null() {
                    "  => succeeded without any result value".into()
                } else {
                    format!("  => succeeded with '{}'", crate::experiment::tolerance::brief(output))
                }
            }
            Event::ProviderOutput { name, line } => format!("  [{name}] {line}"),
            Event::ActivitySkipped { name, reason } => format!("Activity '{name}' skipped by control {reason}"),
            Event::ControlInterrupted { reason } => format!("Experiment interrupted by control {reason}"),
            Event::SafeguardTripped { name, reason } => {
                format!("Safeguard '{name}' tripped, interrupting the experiment: {reason}")
            }
            Event::ToleranceChecked { name, verdict, reason, .. } => {
                format!("  => tolerance of '{name}' {}: {reason}", verdict.replace('_', " "))
            }
            Event::Pause { seconds, before, skipped } => format!(
                "Pausing {} for {seconds}s...{}",
                if *before { "before next activity" } else { "after activity" },
                if *skipped { " (skipped: dry run)" } else { "" }
            ),
            Event::RollbacksStarted => "Let's rollback...".into(),
            Event::NoRollbacks => "No declared rollbacks, let's move on.".into(),
            Event::RollbacksSkipped { strategy, reason } => {
                format!("Rollbacks not played (strategy '{strategy}'): {reason}")
            }
            Event::Interrupted { reason } => format!("Experiment interrupted: {reason}"),
            Event::FailFast { ratio } => {
                format!("Terminating immediately the experiment after {ratio:.1}% hypothesis deviated")
            }
            Event::Warning { message } => message.clone(),
            Event::RunEnded { status, deviated } => match (status, deviated) {
                // The Chaos Toolkit's words (users grep for them), and what the journal says.
                (Status::Completed, true) => {
                    "Experiment ended with status: deviated (journal: status completed, deviated true)"
                        .into()
                }
                (s, true) => format!(
                    "Experiment ended with status: {} (the steady state also deviated)",
                    s.as_str()
                ),
                (s, false) => format!("Experiment ended with status: {}", s.as_str()),
            },
        }
    }

    /// The event with every secret masked, in every text it carries. The match is
    /// exhaustive on purpose: a new variant must say what it carries, so nothing passes
    /// through unmasked by default.
    pub fn redacted(self, r: &Redactor) -> Event {
        if r.is_empty() {
            return self;
        }
        let t = |s: String| r.text(&s).into_owned();
        match self {
            Event::RunStarted { title, run_id } => Event::RunStarted {
                title: t(title),
                run_id,
            },
            Event::Strategies {
                hypothesis,
                rollbacks,
            } => Event::Strategies {
                hypothesis,
                rollbacks,
            },
            Event::DryRun { mode } => Event::DryRun { mode },
            Event::HypothesisStarted { title, phase } => Event::HypothesisStarted {
                title: t(title),
                phase,
            },
            Event::HypothesisEnded {
                phase,
                met,
                failing_probe,
            } => Event::HypothesisEnded {
                phase,
                met,
                failing_probe: failing_probe.map(t),
            },
            Event::ContinuousStarted { frequency } => Event::ContinuousStarted { frequency },
            Event::ContinuousEnded {
                iterations,
                deviations,
            } => Event::ContinuousEnded {
                iterations,
                deviations,
            },
            Event::NoHypothesis => Event::NoHypothesis,
            Event::MethodStarted => Event::MethodStarted,
            Event::NoActivities => Event::NoActivities,
            Event::MethodEnded { interrupted } => Event::MethodEnded { interrupted },
            Event::ActivityStarted {
                kind,
                name,
                background,
                phase,
            } => Event::ActivityStarted {
                kind,
                name: t(name),
                background,
                phase,
            },
            Event::ActivityEnded {
                name,
                phase,
                succeeded,
                error,
                output,
            } => Event::ActivityEnded {
                name: t(name),
                phase,
                succeeded,
                error: error.map(t),
                output: r.into_value(output),
            },
            Event::ProviderOutput { name, line } => Event::ProviderOutput {
                name: t(name),
                line: t(line),
            },
            Event::ActivitySkipped { name, reason } => Event::ActivitySkipped {
                name: t(name),
                reason: t(reason),
            },
            Event::ControlInterrupted { reason } => Event::ControlInterrupted { reason: t(reason) },
            Event::SafeguardTripped { name, reason } => Event::SafeguardTripped {
                name: t(name),
                reason: t(reason),
            },
            Event::ToleranceChecked {
                name,
                met,
                verdict,
                reason,
                evidence,
            } => Event::ToleranceChecked {
                name: t(name),
                met,
                verdict,
                reason: t(reason),
                evidence: r.into_value(evidence),
            },
            Event::Pause {
                seconds,
                before,
                skipped,
            } => Event::Pause {
                seconds,
                before,
                skipped,
            },
            Event::RollbacksStarted => Event::RollbacksStarted,
            Event::NoRollbacks => Event::NoRollbacks,
            Event::RollbacksSkipped { strategy, reason } => Event::RollbacksSkipped {
                strategy,
                reason: t(reason),
            },
            Event::Interrupted { reason } => Event::Interrupted { reason: t(reason) },
            Event::FailFast { ratio } => Event::FailFast { ratio },
            Event::Warning { message } => Event::Warning {
                message: t(message),
            },
            Event::RunEnded { status, deviated } => Event::RunEnded { status, deviated },
        }
    }

    /// Structured fields for machine formats.
    pub fn fields(&self) -> Value {
        match self {
            Event::RunStarted { title, run_id } => json!({"title": title, "run_id": run_id}),
            Event::HypothesisStarted { phase, .. } => json!({"phase": phase.as_str()}),
            Event::HypothesisEnded {
                phase,
                met,
                failing_probe,
            } => {
                json!({"phase": phase.as_str(), "met": met, "probe": failing_probe})
            }
            Event::ActivityStarted {
                kind,
                name,
                background,
                phase,
            } => {
                json!({"activity": name, "type": kind.to_ascii_lowercase(), "background": background, "phase": phase.as_str()})
            }
            Event::ActivityEnded {
                name,
                phase,
                succeeded,
                error,
                ..
            } => {
                json!({"activity": name, "phase": phase.as_str(), "status": if *succeeded {"succeeded"} else {"failed"}, "error": error})
            }
            Event::ToleranceChecked {
                name,
                met,
                verdict,
                reason,
                evidence,
            } => {
                json!({"activity": name, "met": met, "verdict": verdict, "reason": reason, "evidence": evidence})
            }
            Event::RunEnded { status, deviated } => {
                json!({"status": status.as_str(), "deviated": deviated})
            }
            Event::Interrupted { reason } => json!({"reason": reason}),
            Event::ProviderOutput { name, .. } => json!({"activity": name}),
            Event::SafeguardTripped { name, reason } => {
                json!({"safeguard": name, "reason": reason})
            }
            Event::ActivitySkipped { name, reason } => json!({"activity": name, "reason": reason}),
            Event::ControlInterrupted { reason } => json!({"reason": reason}),
            _ => json!({}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One event of every kind (both outcomes where the name depends on one). A new
    /// variant fails to compile here until it is added to the list below.
    fn every_event() -> Vec<Event> {
        let _exhaustive = |e: &Event| match e {
            Event::RunStarted { .. }
            | Event::Strategies { .. }
            | Event::DryRun { .. }
            | Event::HypothesisStarted { .. }
            | Event::HypothesisEnded { .. }
            | Event::ContinuousStarted { .. }
            | Event::ContinuousEnded { .. }
            | Event::NoHypothesis
            | Event::MethodStarted
            | Event::NoActivities
            | Event::MethodEnded { .. }
            | Event::ActivityStarted { .. }
            | Event::ActivityEnded { .. }
            | Event::ProviderOutput { .. }
            | Event::ActivitySkipped { .. }
            | Event::ControlInterrupted { .. }
            | Event::SafeguardTripped { .. }
            | Event::ToleranceChecked { .. }
            | Event::Pause { .. }
            | Event::RollbacksStarted
            | Event::NoRollbacks
            | Event::RollbacksSkipped { .. }
            | Event::Interrupted { .. }
            | Event::FailFast { .. }
            | Event::Warning { .. }
            | Event::RunEnded { .. } => (),
        };
        let s = String::new;
        vec![
            Event::RunStarted {
                title: s(),
                run_id: s(),
            },
            Event::Strategies {
                hypothesis: s(),
                rollbacks: s(),
            },
            Event::DryRun { mode: s() },
            Event::HypothesisStarted {
                title: s(),
                phase: Phase::Before,
            },
            Event::HypothesisEnded {
                phase: Phase::After,
                met: true,
                failing_probe: None,
            },
            Event::HypothesisEnded {
                phase: Phase::After,
                met: false,
                failing_probe: None,
            },
            Event::ContinuousStarted { frequency: 1.0 },
            Event::ContinuousEnded {
                iterations: 1,
                deviations: 0,
            },
            Event::NoHypothesis,
            Event::MethodStarted,
            Event::NoActivities,
            Event::MethodEnded { interrupted: false },
            Event::ActivityStarted {
                kind: "probe",
                name: s(),
                background: false,
                phase: Phase::Method,
            },
            Event::ActivityEnded {
                name: s(),
                phase: Phase::Method,
                succeeded: true,
                error: None,
                output: Value::Null,
            },
            Event::ActivityEnded {
                name: s(),
                phase: Phase::Method,
                succeeded: false,
                error: None,
                output: Value::Null,
            },
            Event::ProviderOutput {
                name: s(),
                line: s(),
            },
            Event::ActivitySkipped {
                name: s(),
                reason: s(),
            },
            Event::ControlInterrupted { reason: s() },
            Event::SafeguardTripped {
                name: s(),
                reason: s(),
            },
            Event::ToleranceChecked {
                name: s(),
                met: true,
                verdict: "met",
                reason: s(),
                evidence: json!({"expected": s()}),
            },
            Event::Pause {
                seconds: 1.0,
                before: true,
                skipped: false,
            },
            Event::RollbacksStarted,
            Event::NoRollbacks,
            Event::RollbacksSkipped {
                strategy: s(),
                reason: s(),
            },
            Event::Interrupted { reason: s() },
            Event::FailFast { ratio: 0.5 },
            Event::Warning { message: s() },
            Event::RunEnded {
                status: Status::Completed,
                deviated: false,
            },
        ]
    }

    /// `NAMES` is exactly the set of names events have: a layer finds every one.
    #[test]
    fn names_lists_every_event_name_and_nothing_else() {
        let names: std::collections::BTreeSet<&str> =
            every_event().iter().map(Event::name).collect();
        let listed: std::collections::BTreeSet<&str> = NAMES.iter().copied().collect();
        assert_eq!(names, listed);
        assert_eq!(listed.len(), NAMES.len(), "a name listed twice");
        for n in NAMES {
            assert_eq!(static_name(n), Some(*n));
        }
        assert_eq!(static_name("experiment.validating"), None);
    }
}
