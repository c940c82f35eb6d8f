//! Tracing setup for a run: where spans go, how they are sampled, W3C propagation
//! helpers, and a shutdown that never holds the exit longer than a fixed limit.
//!
//! faultline exists to show a chaos run next to the application it disturbed, so
//! tracing is on by default; and telemetry must never hurt the run, so every path out
//! of the process is bounded and every lost span is counted and reported.
//!
//! # Where spans go
//!
//! Resolved once by [`Telemetry::init`] from the settings file ([`TelemetryConfig`]
//! fields, which win) and the standard variables (read through a function, so tests
//! pass a map, by [`otel_env`], the resolver the OTLP log sink uses too):
//!
//! | what | source, first wins |
//! |---|---|
//! | off | `OTEL_SDK_DISABLED=true`; `OTEL_TRACES_EXPORTER=none` (or settings `exporter: none`) |
//! | protocol | settings `protocol`, `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc`, `http/protobuf` (default), `http/json` |
//! | endpoint | settings `endpoint` (a base or a full `/v1/traces` URL), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (verbatim), `OTEL_EXPORTER_OTLP_ENDPOINT` (a base: HTTP appends `/v1/traces`) |
//! | headers | `OTEL_EXPORTER_OTLP_TRACES_HEADERS` else `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values percent-decoded), then settings `headers` per key |
//! | timeout | settings `export_timeout`, `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, `OTEL_EXPORTER_OTLP_TIMEOUT` (ms), else [`DEFAULT_EXPORT_TIMEOUT`] (1 s, not the SDK's 10 s) |
//! | resource | `service.name` from settings, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, else `faultline`; plus `service.version`, `chaos.run.id` and the SDK's `telemetry.sdk.*` |
//! | sampler | `OTEL_TRACES_SAMPLER` (+ `_ARG`): `always_on`, `always_off`, `traceidratio`, `parentbased_always_on` (default), `parentbased_always_off`, `parentbased_traceidratio` |
//!
//! With no endpoint configured (and `OTEL_TRACES_EXPORTER` not `otlp`), spans are
//! written as OTLP JSON (an `ExportTraceServiceRequest` in the protobuf-JSON mapping,
//! `{"resourceSpans":[...]}`, hex ids) next to the journal: `dir/journal.json` gives
//! `dir/journal.trace.json`, written atomically at shutdown. Jaeger, Tempo, Honeycomb
//! and the OpenTelemetry Collector are all reached over OTLP.
//!
//! Invalid values the spec says to ignore become [`Telemetry::warnings`]; only an
//! unusable destination (a malformed endpoint, an unknown protocol in the settings
//! file, an `https` gRPC endpoint: no TLS stack is built in for tonic) is an error, and
//! the caller may then go on with [`Telemetry::disabled`].
//!
//! # Bounded shutdown
//!
//! Spans are batched on the SDK's own thread; OTLP exports use the short timeout
//! above and one retry; [`Telemetry::shutdown`] calls the SDK's
//! `shutdown_with_timeout(limit)` inside `spawn_blocking` (never `force_flush`, which
//! waits a fixed 5 s) and reports how many spans were not delivered, because the SDK
//! returns Ok even when it lost them all. With a collector that refuses, never
//! answers or answers 500, the exit is delayed by at most the limit (1.5 s default).
//!
//! # Runtime
//!
//! [`Telemetry::init`] must run inside the tokio runtime that stays alive until
//! [`Telemetry::shutdown`] has returned: the gRPC exporter's connection task lives on
//! it. A current-thread runtime works (the tests run on one), provided the runtime's
//! thread is not blocked synchronously while spans are exported.
//!
//! # Using it (the runner)
//!
//! ```no_run
//! # async fn demo() {
//! use faultline::telemetry::{propagation, Telemetry, TelemetryConfig};
//! use opentelemetry::trace::{TraceContextExt, Tracer};
//! let env = |k: &str| std::env::var(k).ok();
//! let telemetry = Telemetry::init(TelemetryConfig::new("run-1", "journal.json"), &env)
//!     .unwrap_or_else(|_| Telemetry::disabled());
//! let tracer = telemetry.tracer();
//! let parent = telemetry.parent_context(); // the CI pipeline's trace, or empty
//! let experiment = parent.with_span(tracer.start_with_context("chaos.experiment", &parent));
//! let activity = experiment.with_span(tracer.start_with_context("chaos.activity", &experiment));
//! let headers = propagation::http_headers(&activity, &[(propagation::BAGGAGE_RUN_ID, "run-1")]);
//! # let _ = headers;
//! activity.span().end();
//! experiment.span().end();
//! let report = telemetry.shutdown().await; // prints nothing; the CLI shows `report`
//! # let _ = report;
//! # }
//! ```

mod config;
pub mod otel_env;
pub use otel_env::{sdk_disabled, with_scheme};
mod export;
pub mod propagation;
#[cfg(test)]
mod receiver;
#[cfg(test)]
mod tests;

pub use config::{Protocol, DEFAULT_EXPORT_TIMEOUT};

use config::Sink;
use export::{CountingExporter, CountingProcessor, FileExporter, FileSink, Stats};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
    SimpleSpanProcessor,
};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long [`Telemetry::shutdown`] may take by default.
pub const DEFAULT_SHUTDOWN_LIMIT: Duration = Duration::from_millis(1500);

/// The instrumentation scope name of faultline's spans.
pub const TRACER_NAME: &str = "faultline";

/// Beyond the limit, how long `shutdown` waits for the blocking task to hand back
/// its result before it reports without it.
const GRACE: Duration = Duration::from_millis(100);

/// Settings for one run's telemetry. Optional fields come from the settings file
/// and win over the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// This run's id (resource attribute `chaos.run.id`).
    pub run_id: String,
    /// The journal; the embedded default writes `<stem>.trace.json` beside it.
    pub journal_path: PathBuf,
    /// `otlp`, `none`, or `file` (force the embedded file even with an endpoint in the environment).
    pub exporter: Option<String>,
    /// OTLP endpoint: a base (`http://host:4318`) or a full `.../v1/traces` URL for HTTP.
    pub endpoint: Option<String>,
    /// `grpc`, `http/protobuf` or `http/json`.
    pub protocol: Option<String>,
    /// Extra headers (gRPC metadata), literal values; they replace environment headers
    /// of the same name (but the exporter crate also re-reads the process's own
    /// `OTEL_EXPORTER_OTLP_*HEADERS`, whose entries win for a name set in both).
    pub headers: Vec<(String, String)>,
    /// Budget for one export batch, retries included.
    pub export_timeout: Option<Duration>,
    /// `service.name`.
    pub service_name: Option<String>,
    /// The most [`Telemetry::shutdown`] may take.
    pub shutdown_limit: Duration,
    /// The run's secrets, masked in every span before any exporter sees it.
    pub redactor: crate::redact::Redactor,
}

impl TelemetryConfig {
    /// Defaults for everything but the run id and the journal path.
    pub fn new(run_id: impl Into<String>, journal_path: impl Into<PathBuf>) -> TelemetryConfig {
        TelemetryConfig {
            run_id: run_id.into(),
            journal_path: journal_path.into(),
            exporter: None,
            endpoint: None,
            protocol: None,
            headers: Vec::new(),
            export_timeout: None,
            service_name: None,
            shutdown_limit: DEFAULT_SHUTDOWN_LIMIT,
            redactor: crate::redact::Redactor::default(),
        }
    }
}

/// What [`Telemetry::shutdown`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// [`Telemetry::destination`].
    pub destination: String,
    /// Sampled spans that ended during the run.
    pub spans: u64,
    /// Spans the destination accepted (or the file holds).
    pub exported: u64,
    /// Spans in batches the destination rejected or never answered for.
    pub failed: u64,
    /// `spans - exported`: failed, dropped by a full queue, or still queued when the limit ran out.
    pub undelivered: u64,
    /// What went wrong, if anything (no header values, no response bodies).
    pub error: Option<String>,
    /// Whether the shutdown limit cut the flush short.
    pub timed_out: bool,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// Every span reached its destination.
    pub fn complete(&self) -> bool {
        self.undelivered == 0 && self.error.is_none()
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.destination == "disabled" {
            return f.write_str("tracing disabled");
        }
        if self.complete() {
            return write!(f, "{} spans sent to {}", self.exported, self.destination);
        }
        write!(
            f,
            "{} of {} spans not delivered to {}",
            self.undelivered, self.spans, self.destination
        )?;
        if let Some(e) = &self.error {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

/// The run's tracer provider and what is needed to stop it within the limit.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    tracer: SdkTracer,
    destination: String,
    recording: bool,
    stats: Arc<Stats>,
    file: Option<Arc<FileSink>>,
    limit: Duration,
    warnings: Vec<String>,
    parent: Option<Context>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("destination", &self.destination)
            .field("recording", &self.recording)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(TRACER_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// The OTLP exporter for `protocol`, with the short timeout and a single retry.
fn otlp_exporter(
    protocol: Protocol,
    endpoint: &str,
    headers: &[(String, String)],
    timeout: Duration,
    warnings: &mut Vec<String>,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    // The exporters build their HTTP clients themselves: TLS must be ready. (The file
    // sink needs none, and a run that only writes the file never loads it.)
    crate::tls::init();
    // One retry: a refused connection is retried once after ~0.1 s; the timeout bounds
    // the whole batch, retries included.
    let retry = RetryPolicy::recommended().with_max_retries(1);
    let built = match protocol {
        Protocol::Grpc => {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(
                    "the OTLP/gRPC exporter must be set up inside the tokio runtime".into(),
                );
            }
            let mut map = reqwest::header::HeaderMap::new();
            for (k, v) in headers {
                let name =
                    reqwest::header::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes());
                let value = reqwest::header::HeaderValue::from_str(v);
                match (name, value) {
                    (Ok(n), Ok(v)) => {
                        map.append(n, v);
                    }
                    _ => warnings.push(format!(
                        "OTLP header {k:?} is not a valid gRPC metadata entry; not sent"
                    )),
                }
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .with_metadata(
                    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map),
                )
                .with_retry_policy(retry)
                .build()
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            // `with_headers` percent-decodes; ours are decoded already, so keep a
            // literal `%` literal.
            let map: HashMap<String, String> = headers
                .iter()
                .map(|(k, v)| (k.clone(), v.replace('%', "%25")))
                .collect();
            let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
            if endpoint.starts_with("http://") {
                // Plain HTTP needs no certificates: skip loading the system store.
                builder = builder.with_http_client(plain_http_client(timeout)?);
            }
            builder
                .with_protocol(if protocol == Protocol::HttpJson {
                    opentelemetry_otlp::Protocol::HttpJson
                } else {
                    opentelemetry_otlp::Protocol::HttpBinary
                })
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .with_headers(map)
                .with_retry_policy(retry)
                .build()
        }
    };
    built.map_err(|e| format!("cannot set up the {} exporter: {e}", protocol.label()))
}

/// A blocking HTTP client for a plain `http://` collector: no TLS roots loaded. Built on
/// its own thread, as the exporter does, because a blocking client must not be built
/// on an async runtime's thread.
pub(crate) fn plain_http_client(timeout: Duration) -> Result<reqwest::blocking::Client, String> {
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(timeout)
            .tls_certs_only(Vec::<reqwest::Certificate>::new())
            .build()
    })
    .join()
    .map_err(|_| "the thread building the HTTP client panicked".to_string())?
    .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

impl Telemetry {
    /// Set up tracing for a run from `cfg` and the standard `OTEL_*` variables read
    /// through `env` (pass `&|k| std::env::var(k).ok()` in the binary). Also reads
    /// `TRACEPARENT`/`TRACESTATE`/`BAGGAGE` for [`Telemetry::parent_context`].
    ///
    /// Must be called inside the tokio runtime (see the module docs). Nothing is
    /// installed globally: spans come from [`Telemetry::tracer`] only.
    pub fn init(
        cfg: TelemetryConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Telemetry, String> {
        let plan = config::plan(&cfg, env)?;
        let mut warnings = plan.warnings;
        let parent = propagation::parent_from_env(env);
        let resource = Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(plan.resource)
            .build();
        let stats = Arc::new(Stats::default());
        let builder = SdkTracerProvider::builder().with_resource(resource.clone());
        let (provider, destination, file, recording) = match plan.sink {
            Sink::Disabled => (
                builder.with_sampler(Sampler::AlwaysOff).build(),
                "disabled".to_string(),
                None,
                false,
            ),
            Sink::File(path) => {
                let sink = FileSink::new(path.clone(), resource);
                // Collecting in memory is cheap: no batch thread, no queue to overflow.
                let processor = CountingProcessor {
                    inner: SimpleSpanProcessor::new(FileExporter(sink.clone())),
                    stats: stats.clone(),
                    redactor: cfg.redactor.clone(),
                };
                (
                    builder
                        .with_sampler(plan.sampler)
                        .with_span_processor(processor)
                        .build(),
                    format!("file {}", path.display()),
                    Some(sink),
                    true,
                )
            }
            Sink::Otlp {
                protocol,
                endpoint,
                headers,
                timeout,
            } => {
                let exporter =
                    otlp_exporter(protocol, &endpoint, &headers, timeout, &mut warnings)?;
                let batch = BatchSpanProcessor::builder(CountingExporter {
                    inner: exporter,
                    stats: stats.clone(),
                })
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_scheduled_delay(plan.scheduled_delay)
                        .with_max_queue_size(plan.max_queue_size)
                        .with_max_export_batch_size(512.min(plan.max_queue_size))
                        .build(),
                )
                .build();
                let processor = CountingProcessor {
                    inner: batch,
                    stats: stats.clone(),
                    redactor: cfg.redactor.clone(),
                };
                (
                    builder
                        .with_sampler(plan.sampler)
                        .with_span_processor(processor)
                        .build(),
                    format!("{} {}", protocol.label(), config::display_url(&endpoint)),
                    None,
                    true,
                )
            }
        };
        let tracer = provider.tracer_with_scope(scope());
        Ok(Telemetry {
            provider: Some(provider),
            tracer,
            destination,
            recording,
            stats,
            file,
            limit: cfg.shutdown_limit,
            warnings,
            parent,
        })
    }

    /// Tracing off: spans are non-recording no-ops (nothing is kept or exported), but
    /// they still carry a valid, unsampled context, so propagation and the printed
    /// trace id keep working. The fallback when [`Telemetry::init`] fails.
    pub fn disabled() -> Telemetry {
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::AlwaysOff)
            .build();
        let tracer = provider.tracer_with_scope(scope());
        Telemetry {
            provider: Some(provider),
            tracer,
            destination: "disabled".into(),
            recording: false,
            stats: Arc::new(Stats::default()),
            file: None,
            limit: DEFAULT_SHUTDOWN_LIMIT,
            warnings: Vec::new(),
            parent: None,
        }
    }

    /// The tracer for every faultline span (scope `faultline`, crate version). With
    /// tracing disabled its spans are non-recording (see [`Telemetry::disabled`]).
    /// Spans ended after [`Telemetry::shutdown`] are dropped.
    pub fn tracer(&self) -> SdkTracer {
        self.tracer.clone()
    }

    /// Where spans go, for the console: `OTLP/gRPC http://127.0.0.1:4317`,
    /// `OTLP/HTTP protobuf http://host:4318/v1/traces`, `file ./journal.trace.json`,
    /// `disabled`. Credentials in the URL are masked; header values never appear.
    pub fn destination(&self) -> String {
        self.destination.clone()
    }

    /// Whether spans are recorded and exported at all.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Ignored configuration values, each with a hint.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The parent for the experiment span: the trace in faultline's own
    /// `TRACEPARENT` (a CI pipeline's), or an empty context.
    pub fn parent_context(&self) -> Context {
        self.parent.clone().unwrap_or_default()
    }

    /// Whether `TRACEPARENT` in faultline's environment named a valid parent.
    pub fn has_env_parent(&self) -> bool {
        self.parent.is_some()
    }

    /// The shutdown limit in force.
    pub fn shutdown_limit(&self) -> Duration {
        self.limit
    }

    /// Flush and stop within the shutdown limit (plus ~0.1 s), never longer, and report
    /// what was delivered. End every span first: open spans are not exported.
    ///
    /// The SDK's blocking shutdown runs in `spawn_blocking`, so on a current-thread
    /// runtime the runtime's thread stays free to drive the gRPC connection meanwhile.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let start = Instant::now();
        let Some(provider) = self.provider.take() else {
            return self.report(None, start);
        };
        // The limit is the whole budget, grace included: the exporter gets the rest.
        let limit = self.limit.saturating_sub(GRACE).max(GRACE);
        let file = self.file.clone();
        if file.is_some() {
            // The file exporter does no I/O until this write: no thread needed.
            let outcome = finish(provider, file.as_deref(), limit);
            return self.report(Some(outcome), start);
        }
        let task = tokio::task::spawn_blocking(move || finish(provider, file.as_deref(), limit));
        let outcome = match tokio::time::timeout(limit + GRACE, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Finish {
                error: Some(format!("telemetry shutdown failed: {e}")),
                ..Finish::default()
            },
            Err(_) => Finish {
                timed_out: true,
                ..Finish::default()
            },
        };
        self.report(Some(outcome), start)
    }

    fn report(&self, outcome: Option<Finish>, start: Instant) -> ShutdownReport {
        let outcome = outcome.unwrap_or_default();
        let spans = self.stats.ended.load(Ordering::Relaxed);
        let (exported, failed) = match (&self.file, outcome.written) {
            (Some(_), Some(n)) => (n, 0),
            (Some(_), None) => (0, spans),
            (None, _) => (
                self.stats.exported.load(Ordering::Relaxed),
                self.stats.failed.load(Ordering::Relaxed),
            ),
        };
        let undelivered = spans.saturating_sub(exported);
        let mut error = outcome.error;
        if error.is_none() && undelivered > 0 {
            error = self.stats.error();
        }
        if outcome.timed_out {
            let limit = format!(
                "shutdown limit of {:.1} s reached",
                self.limit.as_secs_f64()
            );
            error = Some(match (error, self.stats.error()) {
                (Some(e), _) | (None, Some(e)) => format!("{limit}; {e}"),
                (None, None) => limit,
            });
        }
        ShutdownReport {
            destination: self.destination.clone(),
            spans,
            exported,
            failed,
            undelivered,
            error,
            timed_out: outcome.timed_out,
            elapsed: start.elapsed(),
        }
    }
}

impl Drop for Telemetry {
    /// The fallback when [`Telemetry::shutdown`] was not awaited: the same bounded
    /// shutdown, blocking the current thread for at most the limit (a gRPC export
    /// cannot progress meanwhile on a current-thread runtime, so its spans are lost).
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = finish(provider, self.file.as_deref(), self.limit);
        }
    }
}

/// What the blocking part of the shutdown found.
#[derive(Debug, Default)]
struct Finish {
    timed_out: bool,
    error: Option<String>,
    /// Spans in the written file (file sink only).
    written: Option<u64>,
}

/// Stop the provider within `limit`, then write the file if there is one.
fn finish(provider: SdkTracerProvider, file: Option<&FileSink>, limit: Duration) -> Finish {
    let mut out = Finish::default();
    if let Err(e) = provider.shutdown_with_timeout(limit) {
        // The provider folds the processors' errors into one text.
        let text = e.to_string();
        if text.contains("Timeout") {
            out.timed_out = true;
        } else if !text.contains("AlreadyShutdown") {
            out.error = Some(format!("telemetry shutdown: {text}"));
        }
    }
    if let Some(sink) = file {
        match sink.write() {
            Ok(n) => out.written = Some(n as u64),
            Err(e) => out.error = Some(e),
        }
    }
    out
}
