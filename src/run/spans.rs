//! Spans for the lifecycle: one per experiment, hypothesis check, method, rollbacks,
//! activity (and, in the http provider, one CLIENT span per request), as `tracing`
//! spans with their `chaos.*` fields; span events are `tracing` events inside them.
//!
//! The OpenTelemetry spans come out of these through `tracing-opentelemetry`, on a
//! subscriber that belongs to the run ([`Trace`]), never a process-wide default: two
//! runs in one process keep separate traces. Parents are passed explicitly (background
//! activities run on other tasks), never taken from a "current span". Every name here
//! is listed in `docs/telemetry.md`; the span and event helpers below are the only
//! places that create them, so each name and its fields are written once.

use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer};
use tracing::field::Empty;
use tracing::{Dispatch, Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

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
    /// An activity, as `tracing` names it; its OpenTelemetry name is `<type> <name>`.
    pub const ACTIVITY: &str = "chaos.activity";
    /// An HTTP request, as `tracing` names it; its OpenTelemetry name is `HTTP <METHOD>`.
    pub const HTTP_REQUEST: &str = "chaos.http.request";
}

/// Attribute keys (the `chaos.*` namespace).
pub mod attr {
    pub const RUN_ID: &str = "chaos.run.id";
    pub const EXPERIMENT_TITLE: &str = "chaos.experiment.title";
    pub const EXPERIMENT_STATUS: &str = "chaos.experiment.status";
    pub const EXPERIMENT_DEVIATED: &str = "chaos.experiment.deviated";
    pub const ABORT_LATENCY_MS: &str = "chaos.abort.latency_ms";
    /// How many Python workers the run started (set when it started one).
    pub const PYTHON_WORKERS: &str = "chaos.python.workers";
    /// How many of them were killed mid-call or exited on their own.
    pub const PYTHON_WORKER_RESTARTS: &str = "chaos.python.worker_restarts";
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
    pub const TOLERANCE_VERDICT: &str = "chaos.tolerance.verdict";
    pub const TOLERANCE_ACTUAL: &str = "chaos.tolerance.actual";
    pub const TOLERANCE_QUERY: &str = "chaos.tolerance.query";
    pub const TOLERANCE_TIME: &str = "chaos.tolerance.time";
    pub const PAUSE_SECONDS: &str = "chaos.pause.seconds";
    pub const PAUSE_WHEN: &str = "chaos.pause.when";
    pub const INTERRUPT_REASON: &str = "chaos.interrupt.reason";
    pub const INTERRUPT_SOURCE: &str = "chaos.interrupt.source";
    pub const SKIP_REASON: &str = "chaos.skip.reason";
    pub const PROCESS_EXECUTABLE: &str = "process.executable.name";
    pub const PROCESS_EXIT_CODE: &str = "process.exit.code";
    pub const PYTHON_FUNCTION: &str = "code.function.name";
    pub const PYTHON_MODULE: &str = "code.namespace";
    pub const PAUSE_SKIPPED: &str = "chaos.pause.skipped";
    pub const SAFEGUARD_NAME: &str = "chaos.safeguard.name";
    pub const FAIL_FAST_RATIO: &str = "chaos.fail_fast.ratio";
    pub const RETRY_ATTEMPT: &str = "chaos.retry.attempt";
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    pub const URL_FULL: &str = "url.full";
    pub const SERVER_ADDRESS: &str = "server.address";
    pub const SERVER_PORT: &str = "server.port";
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    pub const ERROR_TYPE: &str = "error.type";
    pub const SLO_STORE: &str = "chaos.slo.store";
    pub const SLO_OBJECTIVE: &str = "chaos.slo.objective";
    pub const SLO_MET: &str = "chaos.slo.met";
    pub const SLO_ACTUAL_PERCENT: &str = "chaos.slo.actual_percent";
    pub const SLO_TARGET_PERCENT: &str = "chaos.slo.target_percent";
    pub const SLO_INDICATOR_ID: &str = "chaos.slo.indicator.id";
    pub const SLO_INDICATOR_PERCENT: &str = "chaos.slo.indicator.percent";
    /// The `slo` probe's verdict: met, not_met or inconclusive.
    pub const SLO_VERDICT: &str = "chaos.slo.verdict";
    /// The `slo` probe's burn rate over its window.
    pub const SLO_BURN_RATE: &str = "chaos.slo.burn_rate";
    /// The events the `slo` probe counted.
    pub const SLO_EVENTS: &str = "chaos.slo.events";
    /// The share (0 to 1) of the period's error budget the run consumed.
    pub const SLO_BUDGET_CONSUMED: &str = "chaos.slo.budget_consumed_by_run";
}

/// The fields `tracing-opentelemetry` reads as the OpenTelemetry span's name, kind
/// and status instead of attributes.
mod otel {
    pub const NAME: &str = "otel.name";
    pub const KIND: &str = "otel.kind";
    pub const STATUS_CODE: &str = "otel.status_code";
    /// Sets the status to ERROR with this message (tracing-opentelemetry 0.34).
    pub const STATUS_DESCRIPTION: &str = "otel.status_description";
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

/// The crate's own target prefix: only its spans and events reach OpenTelemetry, so
/// the exporter's crates (opentelemetry*, tonic, h2, hyper, reqwest, tower), which
/// use `tracing` themselves, never feed spans back into the trace they export.
const OWN_TARGET: &str = env!("CARGO_CRATE_NAME");

/// A layer observing one run (the console, the log sinks), on the run's own subscriber.
pub type RunLayer =
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static>;

/// One run's observation: the `tracing` dispatcher its spans and events go to, and the
/// OpenTelemetry context a span hands on (W3C propagation, trace ids on events).
///
/// Installed for the run's future and each task it spawns
/// (`tracing::instrument::WithSubscriber`), not as the process default: two runs in
/// one process have two dispatchers and two traces.
#[derive(Clone)]
pub struct Trace {
    dispatch: Dispatch,
    /// Whether the OpenTelemetry layer is installed (spans are recorded).
    recording: bool,
    /// Without the layer: one unsampled context for the whole run (the parent's trace
    /// id, or a new one), so ids are still printed and propagated.
    fallback: Context,
}

impl Trace {
    /// The dispatcher for one run: the registry with `layers`, plus the OpenTelemetry
    /// layer when there is a `tracer` (`None`: telemetry is off, no layer at all).
    /// `parent` is the experiment span's parent (a CI pipeline's `TRACEPARENT`), or
    /// empty.
    pub fn new(tracer: Option<SdkTracer>, parent: &Context, layers: Vec<RunLayer>) -> Trace {
        use tracing_subscriber::filter::{LevelFilter, Targets};
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let recording = tracer.is_some();
        // Everything the layer would add beyond what faultline writes is off: source
        // locations (`code.namespace` is the python module here), threads, targets,
        // busy/idle times, and the mapping of `error` fields and ERROR events to
        // exceptions and statuses (statuses are set explicitly by [`end`]).
        let layer = tracer.map(|t| {
            tracing_opentelemetry::layer()
                .with_tracer(t)
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_level(false)
                .with_tracked_inactivity(false)
                .with_context_activation(false)
                .with_error_events_to_status(false)
                .with_error_events_to_exceptions(false)
                .with_error_fields_to_exceptions(false)
                .with_error_records_to_exceptions(false)
                .with_filter(
                    Targets::new()
                        .with_target(OWN_TARGET, LevelFilter::TRACE)
                        // Lifecycle events are for the console and sinks, not span events.
                        .with_target(crate::event::TARGET, LevelFilter::OFF),
                )
        });
        let fallback = if recording {
            Context::new()
        } else {
            let ids = RandomIdGenerator::default();
            let inherited = parent.span().span_context().clone();
            let trace_id = if inherited.is_valid() {
                inherited.trace_id()
            } else {
                ids.new_trace_id()
            };
            parent.with_remote_span_context(SpanContext::new(
                trace_id,
                ids.new_span_id(),
                TraceFlags::default(),
                false,
                inherited.trace_state().clone(),
            ))
        };
        Trace {
            // An empty list of layers would disable every call site for this
            // dispatcher (`Vec`'s interest is the best of its members'): no list then.
            dispatch: Dispatch::new(
                tracing_subscriber::registry()
                    .with((!layers.is_empty()).then_some(layers))
                    .with(layer),
            ),
            recording,
            fallback,
        }
    }

    /// The dispatcher to install on the run's future and its tasks.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Whether spans are recorded (the OpenTelemetry layer is installed).
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// The OpenTelemetry context of `span`, to propagate (HTTP headers, a child's
    /// `TRACEPARENT`) and to stamp events with; without spans, the run's context.
    pub fn context(&self, span: &Span) -> Context {
        if self.recording {
            span.context()
        } else {
            self.fallback.clone()
        }
    }
}

/// The experiment span: the root of the run's trace, under `parent` when it holds a
/// span (a CI pipeline's `TRACEPARENT`).
pub fn experiment(
    parent: &Context,
    run_id: &str,
    title: &str,
    hypothesis_strategy: &str,
    rollback_strategy: &str,
    tags: Option<&str>,
    dry: Option<&str>,
) -> Span {
    let span = tracing::info_span!(
        parent: None,
        name::EXPERIMENT,
        { attr::RUN_ID } = run_id,
        { attr::EXPERIMENT_TITLE } = title,
        { attr::HYPOTHESIS_STRATEGY } = hypothesis_strategy,
        { attr::ROLLBACK_STRATEGY } = rollback_strategy,
        { attr::EXPERIMENT_TAGS } = tags,
        { attr::DRY } = dry,
        { attr::EXPERIMENT_STATUS } = Empty,
        { attr::EXPERIMENT_DEVIATED } = Empty,
        { attr::ABORT_LATENCY_MS } = Empty,
        { attr::INTERRUPT_SOURCE } = Empty,
        { attr::PYTHON_WORKERS } = Empty,
        { attr::PYTHON_WORKER_RESTARTS } = Empty,
        { otel::STATUS_CODE } = Empty,
        { otel::STATUS_DESCRIPTION } = Empty,
    );
    if parent.span().span_context().is_valid() {
        // Only fails without the OpenTelemetry layer, when there is nothing to join.
        let _ = span.set_parent(parent.clone());
    }
    span
}

/// One check of the steady-state hypothesis.
pub fn hypothesis(parent: &Span, phase: &str, title: &str, iteration: Option<i64>) -> Span {
    tracing::info_span!(
        parent: parent,
        name::HYPOTHESIS,
        { attr::HYPOTHESIS_PHASE } = phase,
        { attr::HYPOTHESIS_TITLE } = title,
        { attr::HYPOTHESIS_ITERATION } = iteration,
        { attr::HYPOTHESIS_MET } = Empty,
        { otel::STATUS_CODE } = Empty,
        { otel::STATUS_DESCRIPTION } = Empty,
    )
}

/// The method.
pub fn method(parent: &Span) -> Span {
    tracing::info_span!(
        parent: parent,
        name::METHOD,
        { otel::STATUS_CODE } = Empty,
        { otel::STATUS_DESCRIPTION } = Empty,
    )
}

/// The rollbacks.
pub fn rollbacks(parent: &Span) -> Span {
    tracing::info_span!(
        parent: parent,
        name::ROLLBACKS,
        { otel::STATUS_CODE } = Empty,
        { otel::STATUS_DESCRIPTION } = Empty,
    )
}

/// What an activity span says before the activity runs.
pub struct ActivityFields<'a> {
    /// `<type> <name>`: the OpenTelemetry span name.
    pub title: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub phase: &'a str,
    pub background: bool,
    pub provider_type: Option<&'a str>,
    /// The process provider's executable (base name, secrets masked).
    pub executable: Option<&'a str>,
    /// The python provider's module and function.
    pub module: Option<&'a str>,
    pub function: Option<&'a str>,
}

/// An activity. Recorded later: `chaos.activity.timeout`, `.status`, `.output`,
/// `.error`, `process.exit.code`, `chaos.tolerance.met`, and by the SLO providers
/// `chaos.slo.*`.
pub fn activity(parent: &Span, f: &ActivityFields<'_>) -> Span {
    tracing::info_span!(
        parent: parent,
        name::ACTIVITY,
        { otel::NAME } = f.title,
        { attr::ACTIVITY_NAME } = f.name,
        { attr::ACTIVITY_TYPE } = f.kind,
        { attr::ACTIVITY_PHASE } = f.phase,
        { attr::ACTIVITY_BACKGROUND } = f.background,
        { attr::PROVIDER_TYPE } = f.provider_type,
        { attr::PROCESS_EXECUTABLE } = f.executable,
        { attr::PYTHON_MODULE } = f.module,
        { attr::PYTHON_FUNCTION } = f.function,
        { attr::ACTIVITY_TIMEOUT } = Empty,
        { attr::ACTIVITY_STATUS } = Empty,
        { attr::ACTIVITY_OUTPUT } = Empty,
        { attr::PROCESS_EXIT_CODE } = Empty,
        { attr::ACTIVITY_ERROR } = Empty,
        { attr::TOLERANCE_MET } = Empty,
        { attr::SLO_STORE } = Empty,
        { attr::SLO_OBJECTIVE } = Empty,
        { attr::SLO_MET } = Empty,
        { attr::SLO_ACTUAL_PERCENT } = Empty,
        { attr::SLO_TARGET_PERCENT } = Empty,
        { attr::SLO_INDICATOR_ID } = Empty,
        { attr::SLO_INDICATOR_PERCENT } = Empty,
        { attr::SLO_VERDICT } = Empty,
        { attr::SLO_BURN_RATE } = Empty,
        { attr::SLO_EVENTS } = Empty,
        { attr::SLO_BUDGET_CONSUMED } = Empty,
        { otel::STATUS_CODE } = Empty,
        { otel::STATUS_DESCRIPTION } = Empty,
    )
}

/// One HTTP request (kind CLIENT) under its activity. Recorded later:
/// `http.response.status_code`, `error.type`.
pub fn http_request(
    parent: &Span,
    method: &str,
    url: &str,
    host: Option<&str>,
    port: Option<i64>,
) -> Span {
    tracing::info_span!(
        parent: parent,
        name::HTTP_REQUEST,
        { otel::NAME } = format!("HTTP {method}").as_str(),
        { otel::KIND } = "client",
        { attr::HTTP_REQUEST_METHOD } = method,
        { attr::URL_FULL } = url,
        { attr::SERVER_ADDRESS } = host,
        { attr::SERVER_PORT } = port,
        { attr::HTTP_RESPONSE_STATUS_CODE } = Empty,
        { attr::ERROR_TYPE } = Empty,
        { otel::STATUS_CODE } = Empty,
        { otel::STATUS_DESCRIPTION } = Empty,
    )
}

/// Status ERROR with `message` (capped).
pub fn fail(span: &Span, message: &str) {
    span.record(otel::STATUS_CODE, "error");
    span.record(otel::STATUS_DESCRIPTION, cap(message).as_str());
}

/// End a span, ERROR with `error` when given. The OpenTelemetry span ends now even
/// if a handle outlives this call (a task, a provider's context): tracing-opentelemetry
/// ends a span at its last exit, and entering and leaving it here is that exit. It is
/// exported when its last handle goes.
pub fn end(span: Span, error: Option<&str>) {
    if let Some(e) = error {
        fail(&span, e);
    }
    span.in_scope(|| {});
}

/// Span event: a pause before or after an activity.
pub fn pause(span: &Span, seconds: f64, when: &str, skipped: bool) {
    tracing::event!(name: event::PAUSE, target: module_path!(), parent: span, Level::INFO, {
        { attr::PAUSE_SECONDS } = seconds,
        { attr::PAUSE_WHEN } = when,
        { attr::PAUSE_SKIPPED } = skipped,
    });
}

/// Span event: a tolerance verdict (`expected` only in the hypothesis).
pub fn tolerance(span: &Span, v: &ToleranceFields<'_>) {
    tracing::event!(name: event::TOLERANCE, target: module_path!(), parent: span, Level::INFO, {
        { attr::TOLERANCE_MET } = v.met,
        { attr::TOLERANCE_VERDICT } = v.verdict,
        { attr::TOLERANCE_EXPECTED } = v.expected,
        { attr::TOLERANCE_ACTUAL } = v.actual,
        { attr::TOLERANCE_QUERY } = v.query,
        { attr::TOLERANCE_TIME } = v.time,
        { attr::TOLERANCE_REASON } = v.reason,
    });
}

/// What the tolerance span event says (texts already masked and capped).
pub struct ToleranceFields<'a> {
    /// Within tolerance.
    pub met: bool,
    /// `met`, `not_met` or `inconclusive`.
    pub verdict: &'a str,
    /// The tolerance, or the threshold it sets.
    pub expected: Option<&'a str>,
    /// The value (or reduced value) the verdict rests on.
    pub actual: Option<&'a str>,
    /// The PromQL query behind the output, if any.
    pub query: Option<&'a str>,
    /// Its evaluation time (or window), if any.
    pub time: Option<&'a str>,
    /// Expected against actual, in words.
    pub reason: &'a str,
}

/// Span event: the run was interrupted (by a control, a signal, a safeguard).
pub fn interrupt(span: &Span, reason: &str) {
    tracing::event!(name: event::INTERRUPT, target: module_path!(), parent: span, Level::INFO, {
        { attr::INTERRUPT_REASON } = reason,
    });
}

/// The run was interrupted: the `chaos.interrupt` event on the experiment span, and
/// who did it (`source`, when known: `kill_switch`, `signal`) as the experiment
/// span's `chaos.interrupt.source`, so such runs are found by an attribute query.
pub fn interrupted(span: &Span, reason: &str, source: Option<&str>) {
    if let Some(s) = source {
        span.record(attr::INTERRUPT_SOURCE, s);
    }
    tracing::event!(name: event::INTERRUPT, target: module_path!(), parent: span, Level::INFO, {
        { attr::INTERRUPT_REASON } = reason,
        { attr::INTERRUPT_SOURCE } = source,
    });
}

/// What the controls found during the run (`Control::findings`), on the experiment
/// span: its attributes and events. Their names belong to the controls (each listed
/// in `docs/telemetry.md`), so they are set through the OpenTelemetry span rather
/// than as `tracing` fields, which must be known when the span opens. Without the
/// OpenTelemetry layer (telemetry off) nothing is recorded.
pub fn findings(span: &Span, f: &crate::control::Findings) {
    use crate::control::AttrValue;
    use opentelemetry::KeyValue;
    let value = |v: &AttrValue| -> opentelemetry::Value {
        match v {
            AttrValue::Text(t) => cap(t).into(),
            AttrValue::Int(i) => (*i).into(),
            AttrValue::Float(x) => (*x).into(),
            AttrValue::Bool(b) => (*b).into(),
        }
    };
    for (k, v) in &f.attributes {
        span.set_attribute(*k, value(v));
    }
    for e in &f.events {
        let attributes = e
            .attributes
            .iter()
            .map(|(k, v)| KeyValue::new(*k, value(v)))
            .collect();
        match e.at {
            Some(at) => span.add_event_with_timestamp(e.name, at, attributes),
            None => span.add_event(e.name, attributes),
        }
    }
}

/// Span event: a control skipped the activity.
pub fn skip(span: &Span, reason: &str) {
    tracing::event!(name: event::SKIP, target: module_path!(), parent: span, Level::INFO, {
        { attr::SKIP_REASON } = reason,
    });
}

/// Span event: an HTTP request is retried after a refused connection.
pub fn retry(span: &Span, attempt: i64) {
    tracing::event!(name: event::RETRY, target: module_path!(), parent: span, Level::INFO, {
        { attr::RETRY_ATTEMPT } = attempt,
        { attr::ERROR_TYPE } = "connect",
    });
}

/// Span event: `--fail-fast` stopped the method.
pub fn fail_fast(span: &Span, ratio: f64) {
    tracing::event!(name: event::FAIL_FAST, target: module_path!(), parent: span, Level::INFO, {
        { attr::FAIL_FAST_RATIO } = ratio,
    });
}

/// Span event: a safeguard tripped.
pub fn safeguard(span: &Span, name: &str, reason: &str) {
    tracing::event!(name: event::SAFEGUARD, target: module_path!(), parent: span, Level::INFO, {
        { attr::SAFEGUARD_NAME } = name,
        { attr::INTERRUPT_REASON } = reason,
    });
}
