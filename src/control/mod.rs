//! Controls: what decides during a run, and the Chaos Toolkit's user-declared
//! controls.
//!
//! One extension point, one trait. Every hook has an empty default; a before-hook may
//! let the step go on, skip an activity, interrupt the run (status `interrupted`,
//! rollbacks per strategy) or wait for a person to say which. The other hooks are the
//! lifecycle a declared control observes (as `chaoslib`'s controls do). Controls do
//! not log: lifecycle events are `tracing` events on the run's subscriber, and the
//! console and the log sinks are layers there (`crate::event`, `crate::sink::SinksLayer`).
//! `Box<dyn Control>`, `Arc<C>`, `Vec<C>` and `Option<C>` are controls too, so a
//! configured list needs no plumbing.
//!
//! Call order for one run (the runner guarantees it, after the CLI called
//! `before_loading` → `after_loading` on global controls):
//! `configure` → `before_experiment` → [`before_hypothesis` → (`before_activity` →
//! `after_activity`)* → `after_hypothesis`] → `before_method` → (activities)* →
//! `after_method` → [hypothesis after] → `before_rollbacks` → (activities)* →
//! `after_rollbacks` → `findings` → `after_experiment` → `cleanup`.
//!
//! `findings` is how an observer hands back what it found during the run (the alerts
//! that fired, …) without the engine knowing what it is: keys for the journal's
//! faultline extension, attributes and events for the experiment span. The runner
//! asks every control at once, waits at most [`FINDINGS_LIMIT`] for all of them, and
//! records what came back before it closes the experiment span.

pub mod alerts;
pub mod builtin;
pub mod deliver;
pub mod grafana;
pub mod metrics;
pub mod pushgateway;
pub mod python;
pub mod run_metrics;
pub mod webhook;

use crate::experiment::ActivityKind;
use crate::run::journal::{HypothesisState, RunEntry};
use crate::run::{Phase, Status};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// What a before-hook decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Continue,
    /// Do not run this activity (recorded with status `skipped`).
    Skip(String),
    /// Interrupt the run: the rest of the method and the hypothesis are skipped,
    /// rollbacks follow the strategy.
    Interrupt(String),
}

/// A boxed future, for the hooks that may wait (a human answering a prompt).
pub type Hook<'a> = Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

/// A boxed future of a control's [`Findings`].
pub type FindingsHook<'a> = Pin<Box<dyn Future<Output = Findings> + Send + 'a>>;

/// The most the runner waits, at the end of a run, for every control's findings
/// together (they are asked concurrently). What is not ready by then is not recorded,
/// and the runner says so: an observer never holds a run for more.
pub const FINDINGS_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A value for a span attribute (OpenTelemetry's scalar kinds).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number.
    Float(f64),
    /// True or false.
    Bool(bool),
}

/// One event a control adds to the experiment span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// The event's name (a constant of the control's, listed in `docs/telemetry.md`).
    pub name: &'static str,
    /// When it happened (within the run); `None`: when it is recorded.
    pub at: Option<std::time::SystemTime>,
    /// Its attributes.
    pub attributes: Vec<(&'static str, AttrValue)>,
}

/// What a control found during the run, recorded by the runner before the
/// experiment span closes. Secrets are masked on the way out like everything else
/// (the journal as it is built, spans in the span processor).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// Keys added to the journal's faultline extension (`extensions[0].<key>`); a key
    /// the extension already has (`run_id`, …) is refused with a warning.
    pub journal: Vec<(String, Value)>,
    /// Attributes set on the experiment span.
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// Events added to the experiment span.
    pub events: Vec<SpanEvent>,
}

impl Findings {
    /// Nothing found.
    pub fn is_empty(&self) -> bool {
        self.journal.is_empty() && self.attributes.is_empty() && self.events.is_empty()
    }

    /// Add another control's findings to these.
    pub fn extend(&mut self, other: Findings) {
        self.journal.extend(other.journal);
        self.attributes.extend(other.attributes);
        self.events.extend(other.events);
    }
}

/// Every future polled concurrently; their outputs in order. (A `join_all` without
/// another dependency: controls are few.)
async fn join_all<'a, T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'a>>>) -> Vec<T> {
    let mut done: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(done.iter_mut().filter_map(Option::take).collect())
        }
    })
    .await
}

/// The run, as controls see it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run id.
    pub run_id: String,
    /// The experiment's title (substituted).
    pub title: String,
    /// The experiment as loaded.
    pub experiment: Value,
    /// The run's trace id, when spans are recorded.
    pub trace_id: Option<String>,
    /// What the run targets (`service`, …): `crate::experiment::labels::target_labels`.
    pub labels: crate::experiment::labels::TargetLabels,
    /// The experiment's stable reference (`crate::experiment::labels::experiment_ref`).
    pub experiment_ref: String,
    /// When the run started: the journal's `start`.
    pub started: chrono::DateTime<chrono::Utc>,
    /// When the run ended: the journal's `end` (`after_experiment` only).
    pub ended: Option<chrono::DateTime<chrono::Utc>>,
    /// The run's duration in seconds: the journal's `duration` (`after_experiment`
    /// only).
    pub duration: Option<f64>,
    /// Where the journal is to be written, when the run writes one.
    pub journal: Option<std::path::PathBuf>,
}

/// One activity about to run (or just run).
#[derive(Debug, Clone)]
pub struct ActivityInfo<'a> {
    /// Its name.
    pub name: &'a str,
    /// Probe or action.
    pub kind: ActivityKind,
    /// Where it runs.
    pub phase: Phase,
    /// Runs in the background.
    pub background: bool,
    /// The activity as written.
    pub activity: &'a Value,
}

/// An observer of the lifecycle. Hooks are called inline: keep them cheap, and
/// never block (a hook that waits on a person returns a future).
pub trait Control: Send + Sync {
    /// A name for messages.
    fn name(&self) -> &str {
        "control"
    }
    /// Before the experiment is loaded (only global controls exist then: those of the
    /// settings file and `--control-file`).
    fn before_loading(&self, _source: &str) {}
    /// After the experiment is loaded and found valid (global controls).
    fn after_loading(&self, _experiment: &Value) {}
    /// Once, before anything runs.
    fn configure(&self, _run: &RunInfo) {}
    /// Before the experiment starts.
    fn before_experiment<'a>(&'a self, _run: &'a RunInfo) -> Hook<'a> {
        Box::pin(async { Decision::Continue })
    }
    /// Before each hypothesis check.
    fn before_hypothesis(&self, _phase: Phase) -> Decision {
        Decision::Continue
    }
    /// After each hypothesis check.
    fn after_hypothesis(&self, _phase: Phase, _state: &HypothesisState) {}
    /// Before the method.
    fn before_method(&self) -> Decision {
        Decision::Continue
    }
    /// After the method (background activities included).
    fn after_method(&self) {}
    /// Before the rollbacks (they cannot be skipped from here).
    fn before_rollbacks(&self) {}
    /// After the rollbacks.
    fn after_rollbacks(&self) {}
    /// Before each activity (hypothesis probes, method, rollbacks).
    fn before_activity<'a>(&'a self, _activity: &'a ActivityInfo<'a>) -> Hook<'a> {
        Box::pin(async { Decision::Continue })
    }
    /// After each activity, with its journal entry.
    fn after_activity(&self, _activity: &ActivityInfo<'_>, _entry: &RunEntry) {}
    /// What the control found during the run, asked once after the rollbacks (or
    /// where the run stopped), before the experiment span closes. It must finish
    /// within [`FINDINGS_LIMIT`]: the runner does not wait longer.
    fn findings<'a>(&'a self, _run: &'a RunInfo) -> FindingsHook<'a> {
        Box::pin(async { Findings::default() })
    }
    /// After the experiment, with its outcome.
    fn after_experiment(&self, _run: &RunInfo, _status: Status, _deviated: bool) {}
    /// Once, at the very end.
    fn cleanup(&self) {}
}

/// Name the control behind a decision: `confirm: activity 'x' manually aborted`.
fn named(c: &dyn ControlName, d: Decision) -> Decision {
    match d {
        Decision::Continue => Decision::Continue,
        Decision::Skip(r) => Decision::Skip(format!("'{}': {r}", c.control_name())),
        Decision::Interrupt(r) => Decision::Interrupt(format!("'{}': {r}", c.control_name())),
    }
}

/// `Control::name` as an object-safe helper for [`named`].
trait ControlName {
    fn control_name(&self) -> &str;
}

impl<C: Control + ?Sized> ControlName for C {
    fn control_name(&self) -> &str {
        self.name()
    }
}

/// The first non-`Continue` decision wins.
fn first<'c, C: Control + 'c>(
    controls: impl IntoIterator<Item = &'c C>,
    mut f: impl FnMut(&C) -> Decision,
) -> Decision {
    for c in controls {
        let d = f(c);
        if d != Decision::Continue {
            return named(c, d);
        }
    }
    Decision::Continue
}

/// Smart pointers to a control are controls: every hook forwards to the pointee.
macro_rules! forward_control {
    ($($ptr:ident)::+) => {
        impl<C: Control + ?Sized> Control for $($ptr)::+<C> {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn before_loading(&self, source: &str) {
                (**self).before_loading(source)
            }
            fn after_loading(&self, experiment: &Value) {
                (**self).after_loading(experiment)
            }
            fn configure(&self, run: &RunInfo) {
                (**self).configure(run)
            }
            fn before_experiment<'a>(&'a self, run: &'a RunInfo) -> Hook<'a> {
                (**self).before_experiment(run)
            }
            fn before_hypothesis(&self, phase: Phase) -> Decision {
                (**self).before_hypothesis(phase)
            }
            fn after_hypothesis(&self, phase: Phase, state: &HypothesisState) {
                (**self).after_hypothesis(phase, state)
            }
            fn before_method(&self) -> Decision {
                (**self).before_method()
            }
            fn after_method(&self) {
                (**self).after_method()
            }
            fn before_rollbacks(&self) {
                (**self).before_rollbacks()
            }
            fn after_rollbacks(&self) {
                (**self).after_rollbacks()
            }
            fn before_activity<'a>(&'a self, a: &'a ActivityInfo<'a>) -> Hook<'a> {
                (**self).before_activity(a)
            }
            fn after_activity(&self, a: &ActivityInfo<'_>, e: &RunEntry) {
                (**self).after_activity(a, e)
            }
            fn findings<'a>(&'a self, run: &'a RunInfo) -> FindingsHook<'a> {
                (**self).findings(run)
            }
            fn after_experiment(&self, run: &RunInfo, status: Status, deviated: bool) {
                (**self).after_experiment(run, status, deviated)
            }
            fn cleanup(&self) {
                (**self).cleanup()
            }
        }
    };
}

forward_control!(Box);
forward_control!(std::sync::Arc);

impl<C: Control> Control for Option<C> {
    fn name(&self) -> &str {
        self.as_ref().map_or("none", Control::name)
    }
    fn before_loading(&self, source: &str) {
        if let Some(c) = self {
            c.before_loading(source)
        }
    }
    fn after_loading(&self, experiment: &Value) {
        if let Some(c) = self {
            c.after_loading(experiment)
        }
    }
    fn configure(&self, run: &RunInfo) {
        if let Some(c) = self {
            c.configure(run)
        }
    }
    fn before_experiment<'a>(&'a self, run: &'a RunInfo) -> Hook<'a> {
        match self {
            Some(c) => c.before_experiment(run),
            None => Box::pin(async { Decision::Continue }),
        }
    }
    fn before_hypothesis(&self, phase: Phase) -> Decision {
        self.as_ref()
            .map_or(Decision::Continue, |c| c.before_hypothesis(phase))
    }
    fn after_hypothesis(&self, phase: Phase, state: &HypothesisState) {
        if let Some(c) = self {
            c.after_hypothesis(phase, state)
        }
    }
    fn before_method(&self) -> Decision {
        self.as_ref()
            .map_or(Decision::Continue, Control::before_method)
    }
    fn after_method(&self) {
        if let Some(c) = self {
            c.after_method()
        }
    }
    fn before_rollbacks(&self) {
        if let Some(c) = self {
            c.before_rollbacks()
        }
    }
    fn after_rollbacks(&self) {
        if let Some(c) = self {
            c.after_rollbacks()
        }
    }
    fn before_activity<'a>(&'a self, a: &'a ActivityInfo<'a>) -> Hook<'a> {
        match self {
            Some(c) => c.before_activity(a),
            None => Box::pin(async { Decision::Continue }),
        }
    }
    fn after_activity(&self, a: &ActivityInfo<'_>, e: &RunEntry) {
        if let Some(c) = self {
            c.after_activity(a, e)
        }
    }
    fn findings<'a>(&'a self, run: &'a RunInfo) -> FindingsHook<'a> {
        match self {
            Some(c) => c.findings(run),
            None => Box::pin(async { Findings::default() }),
        }
    }
    fn after_experiment(&self, run: &RunInfo, status: Status, deviated: bool) {
        if let Some(c) = self {
            c.after_experiment(run, status, deviated)
        }
    }
    fn cleanup(&self) {
        if let Some(c) = self {
            c.cleanup()
        }
    }
}

impl<C: Control> Control for Vec<C> {
    fn name(&self) -> &str {
        "controls"
    }
    fn before_loading(&self, source: &str) {
        self.iter().for_each(|c| c.before_loading(source))
    }
    fn after_loading(&self, experiment: &Value) {
        self.iter().for_each(|c| c.after_loading(experiment))
    }
    fn configure(&self, run: &RunInfo) {
        self.iter().for_each(|c| c.configure(run))
    }
    fn before_experiment<'a>(&'a self, run: &'a RunInfo) -> Hook<'a> {
        Box::pin(async move {
            for c in self {
                let d = c.before_experiment(run).await;
                if d != Decision::Continue {
                    return named(c, d);
                }
            }
            Decision::Continue
        })
    }
    fn before_hypothesis(&self, phase: Phase) -> Decision {
        first(self, |c| c.before_hypothesis(phase))
    }
    fn after_hypothesis(&self, phase: Phase, state: &HypothesisState) {
        self.iter().for_each(|c| c.after_hypothesis(phase, state))
    }
    fn before_method(&self) -> Decision {
        first(self, Control::before_method)
    }
    fn after_method(&self) {
        self.iter().for_each(Control::after_method)
    }
    fn before_rollbacks(&self) {
        self.iter().for_each(Control::before_rollbacks)
    }
    fn after_rollbacks(&self) {
        self.iter().for_each(Control::after_rollbacks)
    }
    fn before_activity<'a>(&'a self, a: &'a ActivityInfo<'a>) -> Hook<'a> {
        Box::pin(async move {
            for c in self {
                let d = c.before_activity(a).await;
                if d != Decision::Continue {
                    return named(c, d);
                }
            }
            Decision::Continue
        })
    }
    fn after_activity(&self, a: &ActivityInfo<'_>, e: &RunEntry) {
        self.iter().for_each(|c| c.after_activity(a, e))
    }
    fn findings<'a>(&'a self, run: &'a RunInfo) -> FindingsHook<'a> {
        let asked = self.iter().map(|c| c.findings(run)).collect();
        Box::pin(async move {
            let mut all = Findings::default();
            for f in join_all(asked).await {
                all.extend(f);
            }
            all
        })
    }
    fn after_experiment(&self, run: &RunInfo, status: Status, deviated: bool) {
        self.iter()
            .for_each(|c| c.after_experiment(run, status, deviated))
    }
    fn cleanup(&self) {
        self.iter().for_each(Control::cleanup)
    }
}

/// A control that applies only to part of the experiment, as the Chaos Toolkit
/// scopes controls by where they are declared.
pub struct Scoped<C> {
    /// The control.
    pub inner: C,
    /// Where it applies.
    pub scope: Scope,
}

/// Where a declared control applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Declared at the top of the experiment, in settings or with --control-file.
    Everything,
    /// Declared at the top with `automatic: false`: the experiment level only.
    ExperimentOnly,
    /// Declared in the steady-state hypothesis: its checks and probes.
    Hypothesis,
    /// Declared on one activity (by name).
    Activity(String),
}

impl Scope {
    fn covers(&self, a: &ActivityInfo<'_>) -> bool {
        match self {
            Scope::Everything => true,
            Scope::ExperimentOnly => false,
            Scope::Hypothesis => matches!(a.phase, Phase::Before | Phase::During(_) | Phase::After),
            Scope::Activity(n) => n == a.name,
        }
    }
}

impl<C: Control> Control for Scoped<C> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn before_loading(&self, source: &str) {
        self.inner.before_loading(source)
    }
    fn after_loading(&self, experiment: &Value) {
        self.inner.after_loading(experiment)
    }
    fn configure(&self, run: &RunInfo) {
        self.inner.configure(run)
    }
    fn before_experiment<'a>(&'a self, run: &'a RunInfo) -> Hook<'a> {
        if matches!(self.scope, Scope::Everything | Scope::ExperimentOnly) {
            self.inner.before_experiment(run)
        } else {
            Box::pin(async { Decision::Continue })
        }
    }
    fn before_hypothesis(&self, phase: Phase) -> Decision {
        if matches!(self.scope, Scope::Everything | Scope::Hypothesis) {
            self.inner.before_hypothesis(phase)
        } else {
            Decision::Continue
        }
    }
    fn after_hypothesis(&self, phase: Phase, state: &HypothesisState) {
        if matches!(self.scope, Scope::Everything | Scope::Hypothesis) {
            self.inner.after_hypothesis(phase, state)
        }
    }
    fn before_method(&self) -> Decision {
        if self.scope == Scope::Everything {
            self.inner.before_method()
        } else {
            Decision::Continue
        }
    }
    fn after_method(&self) {
        if self.scope == Scope::Everything {
            self.inner.after_method()
        }
    }
    fn before_rollbacks(&self) {
        if self.scope == Scope::Everything {
            self.inner.before_rollbacks()
        }
    }
    fn after_rollbacks(&self) {
        if self.scope == Scope::Everything {
            self.inner.after_rollbacks()
        }
    }
    fn before_activity<'a>(&'a self, a: &'a ActivityInfo<'a>) -> Hook<'a> {
        if self.scope.covers(a) {
            self.inner.before_activity(a)
        } else {
            Box::pin(async { Decision::Continue })
        }
    }
    fn after_activity(&self, a: &ActivityInfo<'_>, e: &RunEntry) {
        if self.scope.covers(a) {
            self.inner.after_activity(a, e)
        }
    }
    fn findings<'a>(&'a self, run: &'a RunInfo) -> FindingsHook<'a> {
        self.inner.findings(run)
    }
    fn after_experiment(&self, run: &RunInfo, status: Status, deviated: bool) {
        self.inner.after_experiment(run, status, deviated)
    }
    fn cleanup(&self) {
        self.inner.cleanup()
    }
}
