//! Spans for the lifecycle: one per experiment, hypothesis check, method, rollbacks,
//! activity (and, in the http provider, one CLIENT span per request).
//!
//! Contexts are passed explicitly (background activities run on other tasks), never
//! through a thread-local "current span". Without a tracer every helper is a no-op
//! and contexts carry no span. Every name here is listed in `docs/telemetry.md`.

use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

/// Span names.
pub mod name {
    /// The root span of a run.
    pub const EXPERIMENT: &str = "chaos.experiment";
    /// One check of the steady-state hypothesis.
    pub const HYPOTHESIS: &str = "chaos.hypothesis";
    /// The method.
    pub const METHOD: &str = "chaos.method";
    /// The rollbacks.
    pub const ROLLBACKS: &str = "chaos.rollbacks";
}

/// Attribute keys (the `chaos.*` namespace).
pub mod attr {
    pub const RUN_ID: &str = "chaos.run.id";
    pub const EXPERIMENT_TITLE: &str = "chaos.experiment.title";
    pub const EXPERIMENT_STATUS: &str = "chaos.experiment.status";
    pub const EXPERIMENT_DEVIATED: &str = "chaos.experiment.deviated";
    pub const EXPERIMENT_TAGS: &str = "chaos.experiment.tags";
    pub const HYPOTHESIS_STRATEGY: &str = "chaos.hypothesis.strategy";
    pub const ROLLBACK_STRATEGY: &str = "chaos.rollback.strategy";
    pub const DRY: &str = "chaos.dry";
    pub const HYPOTHESIS_TITLE: &str = "chaos.hypothesis.title";
    pub const HYPOTHESIS_PHASE: &str = "chaos.hypothesis.phase";
    pub const HYPOTHESIS_ITERATION: &str = "chaos.hypothesis.iteration";
    pub const HYPOTHESIS_MET: &str = "chaos.hypothesis.met";
    pub const ACTIVITY_NAME: &str = "chaos.activity.name";
    pub const ACTIVITY_TYPE: &str = "chaos.activity.type";
    pub const ACTIVITY_PHASE: &str = "chaos.activity.phase";
    pub const ACTIVITY_BACKGROUND: &str = "chaos.activity.background";
    pub const ACTIVITY_STATUS: &str = "chaos.activity.status";
    pub const ACTIVITY_OUTPUT: &str = "chaos.activity.output";
    pub const ACTIVITY_ERROR: &str = "chaos.activity.error";
    pub const ACTIVITY_TIMEOUT: &str = "chaos.activity.timeout";
    pub const PROVIDER_TYPE: &str = "chaos.provider.type";
    pub const TOLERANCE_MET: &str = "chaos.tolerance.met";
    pub const TOLERANCE_EXPECTED: &str = "chaos.tolerance.expected";
    pub const TOLERANCE_REASON: &str = "chaos.tolerance.reason";
    pub const PAUSE_SECONDS: &str = "chaos.pause.seconds";
    pub const PAUSE_WHEN: &str = "chaos.pause.when";
    pub const INTERRUPT_REASON: &str = "chaos.interrupt.reason";
    pub const SKIP_REASON: &str = "chaos.skip.reason";
    pub const PROCESS_EXECUTABLE: &str = "process.executable.name";
    pub const PROCESS_EXIT_CODE: &str = "process.exit.code";
    pub const PYTHON_FUNCTION: &str = "code.function.name";
    pub const PYTHON_MODULE: &str = "code.namespace";
}

/// Span event names.
pub mod event {
    pub const PAUSE: &str = "chaos.pause";
    pub const TOLERANCE: &str = "chaos.tolerance";
    pub const INTERRUPT: &str = "chaos.interrupt";
    pub const SKIP: &str = "chaos.skip";
    pub const RETRY: &str = "chaos.retry";
    pub const FAIL_FAST: &str = "chaos.fail_fast";
    pub const SAFEGUARD: &str = "chaos.safeguard";
}

/// Longest text recorded in an attribute (outputs, errors): bigger ones are cut.
pub const MAX_ATTRIBUTE_CHARS: usize = 2048;

/// Cut a text to [`MAX_ATTRIBUTE_CHARS`].
pub fn cap(s: &str) -> String {
    if s.chars().count() <= MAX_ATTRIBUTE_CHARS {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX_ATTRIBUTE_CHARS).collect();
        format!("{cut}…[truncated]")
    }
}

/// Starts spans when there is a tracer.
#[derive(Clone, Default)]
pub struct Spans {
    tracer: Option<SdkTracer>,
}

impl Spans {
    /// Spans from this tracer (`None`: no spans).
    pub fn new(tracer: Option<SdkTracer>) -> Spans {
        Spans { tracer }
    }

    /// The tracer, for providers that make their own CLIENT spans.
    pub fn tracer(&self) -> Option<&SdkTracer> {
        self.tracer.as_ref()
    }

    /// Start a span under `parent`; the returned context carries it.
    pub fn start(
        &self,
        name: impl Into<String>,
        kind: SpanKind,
        parent: &Context,
        attributes: Vec<KeyValue>,
    ) -> Context {
        match &self.tracer {
            None => parent.clone(),
            Some(t) => {
                let span = t
                    .span_builder(name.into())
                    .with_kind(kind)
                    .with_attributes(attributes)
                    .start_with_context(t, parent);
                parent.with_span(span)
            }
        }
    }
}

/// Set attributes on the context's span.
pub fn set(cx: &Context, attributes: Vec<KeyValue>) {
    let span = cx.span();
    for kv in attributes {
        span.set_attribute(kv);
    }
}

/// Add an event to the context's span.
pub fn add_event(cx: &Context, name: &'static str, attributes: Vec<KeyValue>) {
    cx.span().add_event(name, attributes);
}

/// End the context's span, ERROR with `error` when given.
pub fn end(cx: &Context, error: Option<String>) {
    let span = cx.span();
    if let Some(e) = error {
        span.set_status(Status::error(cap(&e)));
    }
    span.end();
}
