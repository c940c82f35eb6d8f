//! The OTLP logs sink on the OpenTelemetry SDK: lifecycle events reach it as `tracing`
//! events through `opentelemetry-appender-tracing`'s bridge (a layer on the run's own
//! dispatcher, for the [`crate::event::TARGET`] target only), are shaped into
//! faultline's log record (below), batched by the SDK's `BatchLogProcessor` and sent by
//! `opentelemetry-otlp`'s log exporter (gRPC, HTTP/protobuf or HTTP/JSON).
//!
//! The record, as the hand-written encoder made it before: body = the message;
//! severity from faultline's level (`CRITICAL` is `FATAL`), severity text = the level;
//! event name and attribute `event.name`; `chaos.run.id`, `chaos.experiment.title`;
//! the event's fields as `chaos.<key>` (nested objects flattened with dots); the trace
//! and span ids of the event's step as the record's trace context. The bridge's raw
//! fields (`event`, `level`, `fields`, `trace_id`, `span_id`) are not sent.
//!
//! Like the trace exporter, it must never hold the exit: short export timeout, few
//! retries, the blocking client only (dependencies pitfalls 4, 5, 7, 8), and a shutdown
//! that runs `shutdown_with_timeout` in `spawn_blocking` under the shared limit. The SDK
//! returns Ok even when it lost records, so what was delivered is counted here.

use super::config::{OtlpProtocol, Target};
use crate::event::field;
use crate::run::spans::RunLayer;
use crate::sink::pipeline::Policy;
use crate::sink::sinks::{LayerSink, SinkReport};
use crate::sink::transport::display_url;
use crate::telemetry::otel_env;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger, LoggerProvider, Severity};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{InstrumentationScope, Key, KeyValue};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, LogProcessor, SdkLogRecord,
    SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::Resource;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The error when the shutdown limit cut delivery short (as the pipeline sinks say it).
const DEADLINE: &str = "shutdown deadline reached with records queued or in flight";

/// Beyond the limit, how long the shutdown waits for the blocking task's answer.
const GRACE: Duration = Duration::from_millis(100);

/// The instrumentation scope of every record: `faultline` and its version (the bridge
/// alone would use an empty scope name).
fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(crate::telemetry::TRACER_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// The resource: `service.name` (`OTEL_SERVICE_NAME`, else from
/// `OTEL_RESOURCE_ATTRIBUTES`, else `faultline`), `service.version`, and the other
/// `OTEL_RESOURCE_ATTRIBUTES`. Malformed entries are left out; the trace setup, which
/// reads the same variables through the same resolver, reports them.
pub(crate) fn resource(env: &dyn Fn(&str) -> Option<String>) -> Resource {
    let found = otel_env::common(env).resource;
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    attrs.insert("service.version".into(), env!("CARGO_PKG_VERSION").into());
    attrs.extend(found.attributes);
    attrs.insert(
        "service.name".into(),
        found.service_name.unwrap_or_else(|| "faultline".into()),
    );
    Resource::builder_empty()
        .with_attributes(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .build()
}

/// Delivery counters: records handed to the SDK, and what the exporter made of them.
#[derive(Debug, Default)]
struct Stats {
    emitted: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    fn error(&self, text: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }
}

/// Counts every record before the batch queue can drop it.
#[derive(Debug)]
struct Counting<P> {
    inner: P,
    stats: Arc<Stats>,
}

impl<P: LogProcessor> LogProcessor for Counting<P> {
    fn emit(&self, data: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.stats.emitted.fetch_add(1, Ordering::Relaxed);
        self.inner.emit(data, scope);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts what the OTLP exporter delivered, and keeps its last error.
#[derive(Debug)]
struct CountingExporter {
    inner: opentelemetry_otlp::LogExporter,
    stats: Arc<Stats>,
}

impl LogExporter for CountingExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.stats.delivered.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.failed.fetch_add(n, Ordering::Relaxed);
                self.stats.error(match e {
                    OTelSdkError::InternalFailure(m) => m.clone(),
                    other => other.to_string(),
                });
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// One OTLP logs destination: the SDK's provider, fed by [`OtlpLogs::layer`].
pub(crate) struct OtlpLogs {
    name: String,
    provider: SdkLoggerProvider,
    stats: Arc<Stats>,
}

/// The OTLP log exporter for a resolved target, with the policy's timeout and retries.
fn exporter(target: &Target, policy: &Policy) -> Result<opentelemetry_otlp::LogExporter, String> {
    // The exporters build their HTTP clients themselves: TLS must be ready.
    crate::tls::init();
    let retry = RetryPolicy::recommended().with_max_retries(policy.retries as usize);
    let built = match target.protocol {
        OtlpProtocol::Grpc => {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(
                    "the OTLP/gRPC exporter must be set up inside the tokio runtime".into(),
                );
            }
            // Names and values were checked when the target was resolved.
            let mut map = reqwest::header::HeaderMap::new();
            for (k, v) in &target.headers {
                let name =
                    reqwest::header::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes());
                let value = reqwest::header::HeaderValue::from_str(v);
                match (name, value) {
                    (Ok(n), Ok(v)) => {
                        map.append(n, v);
                    }
                    _ => return Err(format!("header '{k}' cannot be sent as gRPC metadata")),
                }
            }
            opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_endpoint(&target.url)
                .with_timeout(policy.timeout)
                .with_metadata(
                    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map),
                )
                .with_retry_policy(retry)
                .build()
        }
        p => {
            // `with_headers` percent-decodes; ours are decoded already.
            let map: HashMap<String, String> = target
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.replace('%', "%25")))
                .collect();
            let mut builder = opentelemetry_otlp::LogExporter::builder().with_http();
            if target.url.starts_with("http://") {
                builder =
                    builder.with_http_client(crate::telemetry::plain_http_client(policy.timeout)?);
            }
            builder
                .with_protocol(if p == OtlpProtocol::HttpJson {
                    opentelemetry_otlp::Protocol::HttpJson
                } else {
                    opentelemetry_otlp::Protocol::HttpBinary
                })
                // Verbatim: the resolver made the full `/v1/logs` URL.
                .with_endpoint(&target.url)
                .with_timeout(policy.timeout)
                .with_headers(map)
                .with_retry_policy(retry)
                .build()
        }
    };
    built.map_err(|e| format!("cannot set up the OTLP logs exporter: {e}"))
}

impl OtlpLogs {
    /// The SDK pipeline for a resolved target: exporter, counting batch processor,
    /// provider. Must be called inside the tokio runtime that outlives the shutdown.
    pub(crate) fn new(
        target: &Target,
        policy: &Policy,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OtlpLogs, String> {
        let stats = Arc::new(Stats::default());
        let exporter = CountingExporter {
            inner: exporter(target, policy)?,
            stats: Arc::clone(&stats),
        };
        let batch = BatchLogProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(policy.queue_size.max(1))
                    .with_max_export_batch_size(policy.batch_size.max(1))
                    .with_scheduled_delay(policy.linger)
                    .build(),
            )
            .build();
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource(env))
            .with_log_processor(Counting {
                inner: batch,
                stats: Arc::clone(&stats),
            })
            .build();
        Ok(OtlpLogs {
            name: format!(
                "otlp {} {}",
                target.protocol.as_str(),
                display_url(&target.url)
            ),
            provider,
            stats,
        })
    }

    /// The sink's name in reports: `otlp <protocol> <url>` (credentials masked).
    pub(crate) fn name(&self) -> String {
        self.name.clone()
    }

    fn report(&self, error: Option<String>) -> SinkReport {
        let s = &self.stats;
        let emitted = s.emitted.load(Ordering::Relaxed);
        let delivered = s.delivered.load(Ordering::Relaxed);
        let failed = s.failed.load(Ordering::Relaxed);
        // Records the SDK's queue dropped when full cannot be told apart from those
        // still queued at the deadline: both are `unsent`.
        let unsent = emitted.saturating_sub(delivered + failed);
        let last = s
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        SinkReport {
            name: self.name.clone(),
            delivered,
            dropped: failed + unsent,
            queue_full: 0,
            failed,
            unsent,
            last_error: match (error, last) {
                (Some(e), Some(l)) => Some(format!("{e}; {l}")),
                (e, l) => e.or(l),
            },
        }
    }
}

impl LayerSink for OtlpLogs {
    fn layer(&self, run_id: &str, experiment: &str) -> RunLayer {
        use tracing_subscriber::filter::{LevelFilter, Targets};
        use tracing_subscriber::Layer;
        let provider = RunProvider {
            inner: self.provider.clone(),
            run_id: run_id.to_string(),
            experiment: experiment.to_string(),
        };
        // Only lifecycle events: never the exporter crates' own `tracing` events.
        Box::new(
            OpenTelemetryTracingBridge::new(&provider)
                .with_filter(Targets::new().with_target(crate::event::TARGET, LevelFilter::TRACE)),
        )
    }

    fn shutdown(
        self: Box<Self>,
        limit: Duration,
    ) -> Pin<Box<dyn Future<Output = SinkReport> + Send>> {
        Box::pin(async move {
            let limit = limit.saturating_sub(GRACE).max(GRACE);
            let provider = self.provider.clone();
            // Never `force_flush` (a fixed 5 s); on a current-thread runtime the
            // runtime's thread stays free to drive the gRPC connection meanwhile.
            let task = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(limit));
            let error = match tokio::time::timeout(limit + GRACE, task).await {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(e))) => {
                    let text = e.to_string();
                    if text.contains("Timeout") {
                        Some(DEADLINE.to_string())
                    } else if text.contains("AlreadyShutdown") {
                        None
                    } else {
                        Some(format!("shutdown: {text}"))
                    }
                }
                Ok(Err(e)) => Some(format!("shutdown failed: {e}")),
                Err(_) => Some(DEADLINE.to_string()),
            };
            self.report(error)
        })
    }
}

/// The provider the bridge sees: the SDK's, with faultline's scope, and loggers that
/// shape each record for this run.
struct RunProvider {
    inner: SdkLoggerProvider,
    run_id: String,
    experiment: String,
}

impl LoggerProvider for RunProvider {
    type Logger = RunLogger;

    fn logger_with_scope(&self, _: InstrumentationScope) -> RunLogger {
        RunLogger {
            inner: self.inner.logger_with_scope(scope()),
            run_id: self.run_id.clone(),
            experiment: self.experiment.clone(),
        }
    }
}

/// Turns the bridge's record (the `tracing` event's fields as string attributes) into
/// faultline's log record, then hands it to the SDK.
struct RunLogger {
    inner: SdkLogger,
    run_id: String,
    experiment: String,
}

impl Logger for RunLogger {
    type LogRecord = SdkLogRecord;

    fn create_log_record(&self) -> SdkLogRecord {
        self.inner.create_log_record()
    }

    fn emit(&self, raw: SdkLogRecord) {
        self.inner.emit(self.shape(raw));
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }
}

impl RunLogger {
    /// faultline's record from the bridge's: see the module docs.
    fn shape(&self, raw: SdkLogRecord) -> SdkLogRecord {
        let text = |key: &str| {
            raw.attributes_iter().find_map(|(k, v)| match v {
                AnyValue::String(s) if k.as_str() == key => Some(s.as_str().to_string()),
                _ => None,
            })
        };
        let Some(event) = text(field::EVENT) else {
            return raw;
        };
        let mut r = self.inner.create_log_record();
        let now = raw
            .timestamp()
            .or(raw.observed_timestamp())
            .unwrap_or_else(std::time::SystemTime::now);
        r.set_timestamp(now);
        r.set_observed_timestamp(now);
        if let Some(level) = text(field::LEVEL) {
            let (number, text) = severity(&level);
            r.set_severity_number(number);
            r.set_severity_text(text);
        }
        if let Some(body) = raw.body() {
            r.set_body(body.clone());
        }
        // The SDK keeps the event name as a `&'static str`: the lifecycle names are.
        if let Some(name) = crate::event::static_name(&event) {
            r.set_event_name(name);
        }
        r.add_attribute("event.name", event);
        r.add_attribute("chaos.run.id", self.run_id.clone());
        r.add_attribute("chaos.experiment.title", self.experiment.clone());
        if let Some(Value::Object(fields)) = text(field::FIELDS)
            .as_deref()
            .and_then(|f| serde_json::from_str::<Value>(f).ok())
        {
            let mut out = Vec::new();
            for (k, v) in &fields {
                flatten(&format!("chaos.{k}"), v, &mut out);
            }
            r.add_attributes(out);
        }
        let trace = text(field::TRACE_ID).and_then(|t| TraceId::from_hex(&t).ok());
        let span = text(field::SPAN_ID).and_then(|s| SpanId::from_hex(&s).ok());
        if let (Some(t), Some(s)) = (trace, span) {
            if t != TraceId::INVALID && s != SpanId::INVALID {
                r.set_trace_context(t, s, None);
            }
        }
        r
    }
}

/// OTLP severity from faultline's level, and the level as the severity text.
fn severity(level: &str) -> (Severity, &'static str) {
    match level {
        "DEBUG" => (Severity::Debug, "DEBUG"),
        "INFO" => (Severity::Info, "INFO"),
        "WARNING" => (Severity::Warn, "WARNING"),
        "ERROR" => (Severity::Error, "ERROR"),
        "CRITICAL" => (Severity::Fatal, "CRITICAL"),
        _ => (Severity::Info, "INFO"),
    }
}

/// A JSON value as an OTel value (`None` for null).
fn any(v: &Value) -> Option<AnyValue> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => AnyValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AnyValue::Int(i),
            None => AnyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => AnyValue::String(s.clone().into()),
        Value::Array(a) => AnyValue::ListAny(Box::new(a.iter().filter_map(any).collect())),
        Value::Object(m) => AnyValue::Map(Box::new(
            m.iter()
                .filter_map(|(k, v)| any(v).map(|a| (Key::new(k.clone()), a)))
                .collect(),
        )),
    })
}

/// Fields as attributes: `chaos.<key>`, nested objects flattened with dots.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(Key, AnyValue)>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| flatten(&format!("{prefix}.{k}"), v, out)),
        other => {
            if let Some(a) = any(other) {
                out.push((Key::new(prefix.to_string()), a));
            }
        }
    }
}
