//! Providers: what an activity runs. One file per provider behind one enum.
//!
//! A provider definition is typed here, after `${}` substitution, so a template that
//! produced the wrong type is reported as the activity's failure, with the key named.

pub mod capture;
pub mod http;
pub mod process;
pub mod prometheus;
pub mod python;
pub mod slo;
pub mod tree;

use serde_json::{Map, Value};
use std::time::Duration;

/// Why an activity failed. Its message becomes the journal's `exception`.
#[derive(Debug, Clone)]
pub struct ActivityError {
    /// What happened, in words.
    pub message: String,
    /// The output, when there is one despite the failure (e.g. unexpected status).
    pub output: Option<Value>,
    /// The activity cannot run as written on this machine (missing executable or
    /// python module, wrong arguments): the Chaos Toolkit's validation would have
    /// refused it, so the run treats it as an unexpected error (status aborted).
    pub invalid: bool,
    /// Extra lines for the journal's `exception` list (a Python traceback).
    pub details: Vec<String>,
}

impl ActivityError {
    /// A failure without output.
    pub fn new(message: impl Into<String>) -> ActivityError {
        ActivityError {
            message: message.into(),
            output: None,
            invalid: false,
            details: Vec::new(),
        }
    }

    /// A failure meaning the activity cannot run as written.
    pub fn invalid(message: impl Into<String>) -> ActivityError {
        ActivityError {
            invalid: true,
            ..ActivityError::new(message)
        }
    }
}

/// A typed provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// An HTTP request.
    Http(http::HttpProvider),
    /// A local process.
    Process(process::ProcessProvider),
    /// A Python function, in the run's Python worker.
    Python(python::PythonProvider),
    /// An indicator pushed to the run's SLO store.
    Indicator(slo::IndicatorProvider),
    /// An objective's status from the run's SLO store.
    Slo(slo::SloProbe),
    /// `chaosreliably.slo.probes.slo_is_met`, run natively.
    SloIsMet(slo::SloIsMet),
    /// A PromQL query, instant or over a range.
    Prometheus(prometheus::PrometheusProbe),
    /// `chaosprometheus.probes.query` / `query_interval`, run natively.
    ChaosPrometheus(prometheus::ChaosProbe),
}

/// Whether a python provider is one faultline runs natively (so the pre-flight does
/// not look for Python or the module).
pub fn is_native_python(module: &str, func: &str) -> bool {
    slo::is_native_python(module, func) || prometheus::is_native_python(module, func)
}

/// What a provider may know of the run it is part of.
pub struct RunFacts {
    /// The run's id.
    pub run_id: String,
    /// The run's trace id (32 hex), when there is one.
    pub trace_id: Option<String>,
    /// When the experiment started: the `slo` probe's run window and an indicator's
    /// default `from`.
    pub started: chrono::DateTime<chrono::Utc>,
    /// The run's SLO store, opened on first use.
    pub slo: slo::SloAccess,
    /// When the method started and ended, once they have: the PromQL and SLO
    /// providers' `method` window and `method_end` evaluation time.
    pub method: std::sync::Mutex<MethodTimes>,
    /// The settings' `prometheus:` defaults (base URL, timeout, TLS) of PromQL queries.
    pub prometheus: prometheus::Defaults,
    /// The run's Python worker, started on first use.
    pub python: python::worker::Worker,
}

/// When the method ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct MethodTimes {
    /// Its first activity was about to start.
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    /// Its last activity ended (or it was interrupted).
    pub ended: Option<chrono::DateTime<chrono::Utc>>,
}

impl RunFacts {
    /// When the method started and ended, so far.
    pub fn method_times(&self) -> MethodTimes {
        *self.method.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a provider gets from the run besides its definition.
pub struct Ctx<'a> {
    /// Resolved configuration.
    pub configuration: std::sync::Arc<Map<String, Value>>,
    /// The secrets of the scopes this provider lists (scope -> {key -> value}).
    pub secrets: Map<String, Value>,
    /// Shared HTTP clients.
    pub http: &'a http::Clients,
    /// Extra headers for HTTP requests (trace context).
    pub headers: Vec<(String, String)>,
    /// Extra environment for child processes (trace context).
    pub env: Vec<(String, String)>,
    /// Lines a provider wants shown on the console (a Python function's stderr).
    pub logs: std::sync::Mutex<Vec<String>>,
    /// Tracing, for providers that make CLIENT spans (http); `None` without spans.
    pub trace: Option<TraceCtx>,
    /// Masks secrets in what providers record on spans (URLs, errors).
    pub redactor: &'a crate::redact::Redactor,
    /// The most bytes kept of each output stream or body (the provider's
    /// `output_limit`, else the run's).
    pub output_limit: u64,
    /// What a provider cut or dropped, said once per activity as a warning.
    pub warnings: std::sync::Mutex<Vec<String>>,
    /// The run's processes: children are registered there while they run.
    pub processes: &'a process::Processes,
    /// The run around the activity: ids, start, SLO store.
    pub run: &'a RunFacts,
}

/// What a provider needs to make its own spans under the activity's span.
#[derive(Clone)]
pub struct TraceCtx {
    /// The activity's span.
    pub parent: tracing::Span,
    /// W3C baggage entries (run id, experiment).
    pub baggage: Vec<(String, String)>,
}

impl TraceCtx {
    /// A CLIENT span for one HTTP request to `url` (masked by `redactor`) under the
    /// activity, and the trace headers (`traceparent`, `baggage`) that carry it.
    pub fn client_span(
        &self,
        redactor: &crate::redact::Redactor,
        method: &str,
        url: &str,
    ) -> (tracing::Span, Vec<(String, String)>) {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let parsed = url::Url::parse(url).ok();
        let span = crate::run::spans::http_request(
            &self.parent,
            method,
            &redactor.text(url),
            parsed.as_ref().and_then(|u| u.host_str()),
            parsed
                .as_ref()
                .and_then(|u| u.port_or_known_default())
                .map(i64::from),
        );
        let baggage: Vec<(&str, &str)> = self
            .baggage
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let headers = crate::telemetry::propagation::http_headers(&span.context(), &baggage);
        (span, headers)
    }
}

impl Ctx<'_> {
    /// Keep a line for the console.
    pub fn log(&self, line: impl Into<String>) {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line.into());
    }

    /// Keep a warning for the console (what was cut from an output).
    pub fn warn(&self, message: impl Into<String>) {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message.into());
    }
}

pub(crate) fn field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

/// Seconds from a number or numeric string.
pub(crate) fn seconds(v: &Value, what: &str) -> Result<Duration, String> {
    let f = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match f {
        Some(f) => crate::duration::seconds(f).map_err(|e| format!("{what}: {e}")),
        None => Err(format!(
            "{what} must be a non-negative number of seconds, got {v}"
        )),
    }
}

/// A number of bytes (the provider's `output_limit`), from an integer or numeric
/// string, as substituted.
pub(crate) fn byte_count(v: &Value, what: &str) -> Result<u64, String> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("{what} must be a non-negative whole number of bytes, got {v}"))
}

/// The provider's own `output_limit`, if it sets one.
pub(crate) fn output_limit(m: &Map<String, Value>) -> Result<Option<u64>, String> {
    field(m, "output_limit")
        .map(|v| byte_count(v, "output_limit"))
        .transpose()
}

impl Provider {
    /// Type a substituted provider definition.
    pub fn from_value(v: &Value) -> Result<Provider, String> {
        let m = v.as_object().ok_or("the provider must be an object")?;
        match m.get("type").and_then(Value::as_str) {
            Some("http") => http::HttpProvider::from_map(m).map(Provider::Http),
            Some("process") => process::ProcessProvider::from_map(m).map(Provider::Process),
            Some("python") => {
                let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
                if slo::is_native_python(s("module"), s("func")) {
                    slo::SloIsMet::from_map(m).map(Provider::SloIsMet)
                } else if prometheus::is_native_python(s("module"), s("func")) {
                    prometheus::ChaosProbe::from_map(m).map(Provider::ChaosPrometheus)
                } else {
                    python::PythonProvider::from_map(m).map(Provider::Python)
                }
            }
            Some("indicator") => slo::IndicatorProvider::from_map(m).map(Provider::Indicator),
            Some("slo") => slo::SloProbe::from_map(m).map(Provider::Slo),
            Some("prometheus") => {
                prometheus::PrometheusProbe::from_map(m).map(Provider::Prometheus)
            }
            Some(t) => Err(format!("unknown provider type '{t}'")),
            None => Err("the provider has no type".into()),
        }
    }

    /// The secret scopes this provider may see.
    pub fn secret_scopes(v: &Value) -> Vec<String> {
        match v.get("secrets") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// The provider's own timeout, if it declares one.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Provider::Http(h) => h.timeout.map(|(c, r)| c.unwrap_or_default() + r),
            Provider::Process(p) => p.timeout,
            Provider::Prometheus(p) => p.timeout,
            Provider::ChaosPrometheus(p) => p.timeout(),
            Provider::Python(_)
            | Provider::Indicator(_)
            | Provider::Slo(_)
            | Provider::SloIsMet(_) => None,
        }
    }

    /// The provider's own `output_limit` (bytes kept of each stream or body), if it
    /// declares one.
    pub fn output_limit(&self) -> Option<u64> {
        match self {
            Provider::Http(h) => h.output_limit,
            Provider::Process(p) => p.output_limit,
            Provider::Python(p) => p.output_limit,
            Provider::Indicator(_)
            | Provider::Slo(_)
            | Provider::SloIsMet(_)
            | Provider::Prometheus(_)
            | Provider::ChaosPrometheus(_) => None,
        }
    }

    /// Run it. Dropping the future stops it (child processes are killed).
    pub async fn run(&self, ctx: &Ctx<'_>) -> Result<Value, ActivityError> {
        match self {
            Provider::Http(h) => h.run(ctx).await,
            Provider::Process(p) => p.run(ctx).await,
            Provider::Python(p) => p.run(ctx).await,
            Provider::Indicator(p) => p.run(ctx).await,
            Provider::Slo(p) => p.run(ctx).await,
            Provider::SloIsMet(p) => p.run(ctx).await,
            Provider::Prometheus(p) => p.run(ctx).await,
            Provider::ChaosPrometheus(p) => p.run(ctx).await,
        }
    }
}
