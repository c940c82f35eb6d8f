//! Structured log sinks: every lifecycle event, as one [`Record`], shipped to files
//! and log backends without ever slowing or breaking the run.
//!
//! A run configures a set of [`Sinks`] from the settings file (`sinks:`) and from
//! controls (`chaoshumio.control` becomes a [`SinkConfig::Humio`]). The runner side
//! calls [`Sinks::emit`] (or an [`Emitter`] clone) for each event: it never blocks,
//! it only puts the record in a bounded queue per sink, and counts it as dropped when
//! the queue is full. Background tokio tasks batch, send and retry. At the end,
//! [`Sinks::shutdown`] delivers what it can within a time limit (1.5 s by default,
//! for all sinks together) and returns a [`SinkReport`] per sink.
//!
//! The console is not a sink here: the CLI prints events itself.
//!
//! # Sinks
//!
//! | `type` | what | body |
//! |---|---|---|
//! | `jsonl` | append to a file, one JSON [`Record`] per line (parent dirs created) | |
//! | `http` | batched `POST` with custom headers | `format: array` (default), `loki`, `splunk-hec` |
//! | `humio` | `POST {url}/api/v1/ingest/humio-structured`, `Authorization: Bearer <token>` | the chaoshumio shape |
//! | `otlp` | OTLP logs: `grpc`, `http/protobuf`, `http/json` | `ExportLogsServiceRequest` |
//!
//! Every sink shares one machinery ([`Policy`], see `pipeline.rs`): a queue of
//! 10,000 records, batches of up to 500 records or 200 ms, a 2 s timeout per request
//! (never past the shutdown deadline), 3 retries with exponential backoff (100, 200,
//! 400 ms) on connection errors, timeouts, 408, 429 and 5xx; other 4xx fail the batch
//! at once. `batch_size`, `queue_size`, `timeout` (seconds) and `retries` can be set
//! per network sink.
//!
//! # Settings file
//!
//! ```yaml
//! sinks:
//!   - type: jsonl
//!     path: ./logs/faultline.jsonl
//!   - type: http                      # generic: a JSON array of records
//!     url: https://logs.example.com/ingest
//!     headers: {Authorization: "Bearer abc"}
//!     wrap: records                   # optional: {"records": [...]} instead of [...]
//!   - type: http                      # Grafana Loki
//!     url: http://localhost:3100/loki/api/v1/push
//!     format: loki
//!     labels: {env: staging}
//!   - type: http                      # Splunk HTTP Event Collector
//!     url: https://splunk.example.com:8088/services/collector/event
//!     format: splunk-hec
//!     headers: {Authorization: "Splunk 00000000-0000-0000-0000-000000000000"}
//!   - type: humio
//!     url: https://cloud.humio.com    # the default
//!     token: "<ingest token, resolved from secrets by the caller>"
//!     tags: {team: sre}
//!   - type: otlp                      # every key optional: OTEL_EXPORTER_OTLP_* fill in
//!     endpoint: http://localhost:4318
//!     protocol: http/protobuf         # grpc | http/protobuf | http/json
//!     headers: {x-api-key: abc}
//!     batch_size: 200                 # tuning, any network sink
//!     timeout: 1.0
//!     retries: 2
//! ```
//!
//! # Record and payloads
//!
//! A [`Record`] serialises as (fields absent when unknown):
//! `{"time": "2026-11-21T19:05:17.811526+00:00", "level": "ERROR", "event":
//! "activity.failed", "message": "  => failed: boom", "run_id": "…", "trace_id":
//! "4bf9…", "span_id": "00f0…", "experiment": "title", "fields": {"activity": "x", …}}`.
//!
//! - `format: array`: `[record, …]`, or `{"<wrap>": [record, …]}` with `wrap`.
//! - `format: loki`, for Loki's push API (`POST /loki/api/v1/push`, JSON):
//!   `{"streams": [{"stream": {"service_name": "faultline", "level": "error",
//!   …labels}, "values": [["<unix ns, as a string>", "<the record as one JSON line>"]]}]}`.
//!   Records are grouped into one stream per level; `labels` adds static labels.
//!   Only low-cardinality values are labels: run id, trace id and the event are in
//!   the line, so `{service_name="faultline"} | json | run_id="…"` finds a run.
//!   Multi-tenant Loki wants an `X-Scope-OrgID` header; basic auth goes in `headers`.
//! - `format: splunk-hec`, for Splunk's HTTP Event Collector (`POST
//!   /services/collector/event`, header `Authorization: Splunk <hec token>`): one
//!   `{"time": <epoch seconds, float>, "host": "<node>", "source": "faultline",
//!   "sourcetype": "_json", "event": record, "fields": {…labels}}` object per record,
//!   newline-separated (HEC's batch format). `fields` (indexed fields) only with
//!   `labels`. The index is the token's default index.
//! - `humio`: `[{"tags": {"host", "level": "<event>", "type": "<first word of the
//!   event>", "provider": "faultline", "chaosengineering": "true", "system",
//!   "machine", …tags}, "events": [{"timestamp": "<time>", "attributes": {"event",
//!   "level", "message", "run_id", "trace_id", "span_id", "experiment", …fields}}]}]`,
//!   one element per event name in the batch (chaoshumio's tags, which Humio/LogScale
//!   turns into datasources).
//! - `otlp`: one `ResourceLogs` (resource `service.name` = `OTEL_SERVICE_NAME` or
//!   `faultline`, `service.version`, `OTEL_RESOURCE_ATTRIBUTES`), one `ScopeLogs`
//!   (scope `faultline`), one `LogRecord` per record: `time_unix_nano`,
//!   `severity_number` (DEBUG 5, INFO 9, WARNING 13, ERROR 17, CRITICAL 21),
//!   `severity_text`, `body` = message, `event_name` = event, `trace_id`/`span_id`
//!   bytes, attributes `event.name`, `chaos.run.id`, `chaos.experiment.title` and
//!   each field as `chaos.<field>` (nested objects flattened with dots, nulls left
//!   out).
//!
//! # OTLP endpoint resolution
//!
//! For each of endpoint, protocol, headers and timeout: the sink's own key, else
//! `OTEL_EXPORTER_OTLP_LOGS_*`, else `OTEL_EXPORTER_OTLP_*`, else the default
//! (`http/protobuf`, `http://localhost:4318`, or `http://localhost:4317` for gRPC).
//! Over HTTP, `/v1/logs` is appended to the sink's `endpoint` and to
//! `OTEL_EXPORTER_OTLP_ENDPOINT`; `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` is used verbatim.
//! Headers merge (generic, then logs-specific, then the sink's). gRPC is plaintext
//! (`http://`) and sends no custom headers: faultline's tonic build has no TLS, and
//! request metadata needs `tonic` as a direct dependency; use `http/protobuf` for
//! authenticated or TLS collectors.
//!
//! # Secrets
//!
//! Records must be redacted by the caller ([`Record::redacted`]). Header values and
//! the Humio token are masked in every error text a sink reports, and never appear in
//! a sink's name or in `Debug` output.

mod http;
mod humio;
mod jsonl;
mod otlp;
mod pipeline;
#[cfg(test)]
mod testkit;

pub use otlp::OtlpProtocol;
pub use pipeline::Policy;

use crate::event::{Event, TraceIds};
use crate::redact::Redactor;
use crate::telemetry::otel_env::{self, Signal};
use pipeline::Stats;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The default time [`Sinks::shutdown`] may take, for all sinks together.
pub const DEFAULT_SHUTDOWN_LIMIT: Duration = Duration::from_millis(1500);

/// Extra time `shutdown` gives a task past the deadline before aborting it. Tasks
/// stop on their own at the deadline; this only covers a final flush in progress.
const SHUTDOWN_SLACK: Duration = Duration::from_millis(100);

/// One structured log record: every lifecycle event becomes one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// When, ISO 8601 UTC with microseconds (`2026-11-21T19:05:17.811526+00:00`).
    pub time: String,
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`.
    pub level: &'static str,
    /// The event name, e.g. `activity.failed` (see `docs/telemetry.md`).
    pub event: &'static str,
    /// The human message, as the console prints it.
    pub message: String,
    /// The run id.
    pub run_id: String,
    /// The trace id, 32 hex digits, when tracing is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The current span id, 16 hex digits, when tracing is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The experiment's title.
    pub experiment: String,
    /// The event's structured fields (an object).
    pub fields: Value,
}

impl Record {
    /// The record for an event, stamped now, without trace context.
    pub fn new(event: &Event, run_id: &str, experiment: &str) -> Record {
        Record {
            time: crate::timefmt::now_iso(),
            level: event.level().as_str(),
            event: event.name(),
            message: event.message(),
            run_id: run_id.to_string(),
            trace_id: None,
            span_id: None,
            experiment: experiment.to_string(),
            fields: event.fields(),
        }
    }

    /// With the trace context of the span the event belongs to.
    pub fn with_trace(mut self, trace_id: Option<String>, span_id: Option<String>) -> Record {
        self.trace_id = trace_id;
        self.span_id = span_id;
        self
    }

    /// With the ids an observer receives with the event (`None`: tracing off).
    pub fn traced(self, ids: Option<&TraceIds>) -> Record {
        match ids {
            Some(t) => self.with_trace(Some(t.trace_id.clone()), Some(t.span_id.clone())),
            None => self,
        }
    }

    /// With every secret masked in the message, the title and the fields.
    pub fn redacted(mut self, r: &Redactor) -> Record {
        if r.is_empty() {
            return self;
        }
        self.message = r.text(&self.message).into_owned();
        self.experiment = r.text(&self.experiment).into_owned();
        self.fields = r.value(&self.fields);
        self
    }
}

/// A batch as a sink receives it.
pub type Batch = [Arc<Record>];

/// Why one attempt to send a batch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth another try (connection error, timeout, 408, 429, 5xx).
    Retryable(String),
    /// Retrying would fail the same way (4xx, an unwritable file).
    Fatal(String),
}

/// A destination for records. The shared machinery calls `encode` once per batch
/// and `send` once per attempt, never concurrently, on a background task; it owns
/// timeouts, retries and the deadline, so a sink only does one attempt's I/O.
pub trait Sink: Send + 'static {
    /// What `encode` produces and every attempt sends.
    type Payload: Send + Sync + 'static;

    /// How reports and errors name this sink (no secrets: no token, no password).
    fn name(&self) -> String;

    /// Turn a batch into the body to send (pure).
    fn encode(&self, batch: &Batch) -> Result<Self::Payload, String>;

    /// One attempt at delivering a payload. Must be async I/O only: the binary's
    /// runtime is current-thread.
    fn send(
        &mut self,
        payload: &Self::Payload,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Called once when the queue is drained at shutdown (flush a file).
    fn finish(&mut self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }
}

/// A secret string: deserialises from a plain string, never shows in `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Request headers: `Debug` shows the names only (values are often credentials).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, String>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "***")))
            .finish()
    }
}

/// The body shape of an [`SinkConfig::Http`] sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpFormat {
    /// A JSON array of records (optionally wrapped in an object).
    #[default]
    Array,
    /// Loki's push API JSON body.
    Loki,
    /// Splunk HEC: newline-separated event objects.
    SplunkHec,
}

fn default_humio_url() -> String {
    "https://cloud.humio.com".into()
}

/// One sink, as written in the settings file (strict: unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Append JSON lines to a file.
    Jsonl {
        /// The file; parent directories are created.
        path: PathBuf,
    },
    /// Batched POST of JSON to any URL.
    Http {
        /// Where to POST.
        url: String,
        /// Extra request headers (`Authorization`...).
        #[serde(default)]
        headers: Headers,
        /// Body shape.
        #[serde(default)]
        format: HttpFormat,
        /// `array` only: send `{"<wrap>": [...]}` instead of `[...]`.
        #[serde(default)]
        wrap: Option<String>,
        /// `loki`: static stream labels; `splunk-hec`: indexed `fields`.
        #[serde(default)]
        labels: BTreeMap<String, String>,
        /// Records per request at most (500).
        #[serde(default)]
        batch_size: Option<usize>,
        /// Records waiting at most (10,000).
        #[serde(default)]
        queue_size: Option<usize>,
        /// Seconds per request at most (2).
        #[serde(default)]
        timeout: Option<f64>,
        /// Retries after the first attempt (3).
        #[serde(default)]
        retries: Option<u32>,
    },
    /// Humio / LogScale structured ingest.
    Humio {
        /// The Humio base URL.
        #[serde(default = "default_humio_url")]
        url: String,
        /// The ingest token (resolved from secrets by the caller).
        token: Secret,
        /// Extra tags.
        #[serde(default)]
        tags: BTreeMap<String, String>,
        /// Records per request at most (500).
        #[serde(default)]
        batch_size: Option<usize>,
        /// Records waiting at most (10,000).
        #[serde(default)]
        queue_size: Option<usize>,
        /// Seconds per request at most (2).
        #[serde(default)]
        timeout: Option<f64>,
        /// Retries after the first attempt (3).
        #[serde(default)]
        retries: Option<u32>,
    },
    /// OpenTelemetry logs over OTLP.
    Otlp {
        /// Base endpoint (`http://host:4318`; gRPC: `http://host:4317`).
        #[serde(default)]
        endpoint: Option<String>,
        /// `grpc`, `http/protobuf` or `http/json`.
        #[serde(default)]
        protocol: Option<OtlpProtocol>,
        /// Extra headers (HTTP only).
        #[serde(default)]
        headers: Headers,
        /// Records per request at most (500).
        #[serde(default)]
        batch_size: Option<usize>,
        /// Records waiting at most (10,000).
        #[serde(default)]
        queue_size: Option<usize>,
        /// Seconds per request at most (2, or `OTEL_EXPORTER_OTLP_*TIMEOUT`).
        #[serde(default)]
        timeout: Option<f64>,
        /// Retries after the first attempt (3).
        #[serde(default)]
        retries: Option<u32>,
    },
}

impl SinkConfig {
    /// The `type`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Jsonl { .. } => "jsonl",
            SinkConfig::Http { .. } => "http",
            SinkConfig::Humio { .. } => "humio",
            SinkConfig::Otlp { .. } => "otlp",
        }
    }

    /// [`SinkConfig::validate`], and what building the sink would find wrong in the
    /// environment (an OTLP sink's endpoint, protocol and headers from `OTEL_*`).
    pub fn check_with_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
        let mut p = self.validate();
        if let SinkConfig::Otlp {
            endpoint,
            protocol,
            headers,
            ..
        } = self
        {
            if let Err(e) = otlp::resolve(endpoint.as_deref(), *protocol, &headers.0, env) {
                p.push(e);
            }
        }
        p
    }

    /// Every problem in this sink's settings, without touching the environment.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut tuning = |batch: &Option<usize>, queue: &Option<usize>, t: &Option<f64>| {
            if *batch == Some(0) {
                p.push("batch_size must be at least 1".to_string());
            }
            if *queue == Some(0) {
                p.push("queue_size must be at least 1".to_string());
            }
            if let Some(Err(e)) = t.map(crate::duration::positive_seconds) {
                p.push(format!("timeout: {e} ({})", crate::duration::HINT));
            }
        };
        match self {
            SinkConfig::Jsonl { path } => {
                if path.as_os_str().is_empty() {
                    p.push("path is empty".into());
                }
            }
            SinkConfig::Http {
                url,
                headers,
                format,
                wrap,
                labels,
                batch_size,
                queue_size,
                timeout,
                ..
            } => {
                tuning(batch_size, queue_size, timeout);
                http::check_url(url, &mut p);
                http::check_headers(headers, &mut p);
                if wrap.is_some() && *format != HttpFormat::Array {
                    p.push("wrap only applies to format: array".into());
                }
                if wrap.as_deref() == Some("") {
                    p.push("wrap is empty".into());
                }
                if !labels.is_empty() && *format == HttpFormat::Array {
                    p.push("labels only apply to format: loki or splunk-hec".into());
                }
            }
            SinkConfig::Humio {
                url,
                token,
                batch_size,
                queue_size,
                timeout,
                ..
            } => {
                tuning(batch_size, queue_size, timeout);
                http::check_url(url, &mut p);
                if token.0.trim().is_empty() {
                    p.push("token is empty (the Humio ingest token, from secrets)".into());
                } else if reqwest::header::HeaderValue::from_str(token.0.trim()).is_err() {
                    p.push("token contains characters not allowed in a header".into());
                }
            }
            SinkConfig::Otlp {
                endpoint,
                protocol,
                headers,
                batch_size,
                queue_size,
                timeout,
                ..
            } => {
                tuning(batch_size, queue_size, timeout);
                if let Some(e) = endpoint {
                    http::check_url(e, &mut p);
                }
                http::check_headers(headers, &mut p);
                if *protocol == Some(OtlpProtocol::Grpc) {
                    for k in headers.0.keys() {
                        let key = k.to_ascii_lowercase();
                        if tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(
                            key.as_bytes(),
                        )
                        .is_err()
                        {
                            p.push(format!("header '{k}' cannot be sent as gRPC metadata"));
                        }
                    }
                }
            }
        }
        p
    }

    fn policy(&self) -> Policy {
        let base = Policy::default();
        let (batch, queue, timeout, retries) = match self {
            SinkConfig::Jsonl { .. } => return Policy { retries: 0, ..base },
            SinkConfig::Http {
                batch_size,
                queue_size,
                timeout,
                retries,
                ..
            }
            | SinkConfig::Humio {
                batch_size,
                queue_size,
                timeout,
                retries,
                ..
            }
            | SinkConfig::Otlp {
                batch_size,
                queue_size,
                timeout,
                retries,
                ..
            } => (batch_size, queue_size, timeout, retries),
        };
        Policy {
            batch_size: batch.unwrap_or(base.batch_size),
            queue_size: queue.unwrap_or(base.queue_size),
            timeout: timeout
                .and_then(|t| crate::duration::positive_seconds(t).ok())
                .unwrap_or(base.timeout),
            retries: retries.unwrap_or(base.retries),
            ..base
        }
    }
}

/// What one sink did, reported at shutdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkReport {
    /// The sink (`humio https://cloud.humio.com`, `jsonl ./x.jsonl`...).
    pub name: String,
    /// Records the destination acknowledged.
    pub delivered: u64,
    /// Records lost: `queue_full + failed + unsent`.
    pub dropped: u64,
    /// Dropped because the queue was full when emitted.
    pub queue_full: u64,
    /// Dropped after a non-retryable error or when retries ran out.
    pub failed: u64,
    /// Not delivered when the shutdown deadline passed.
    pub unsent: u64,
    /// The last error seen (secrets masked), even if later attempts succeeded.
    pub last_error: Option<String>,
}

impl SinkReport {
    /// Nothing was lost and nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.dropped == 0 && self.last_error.is_none()
    }
}

impl fmt::Display for SinkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} delivered", self.name, self.delivered)?;
        if self.dropped > 0 {
            write!(
                f,
                ", {} dropped ({} queue full, {} failed, {} unsent at the deadline)",
                self.dropped, self.queue_full, self.failed, self.unsent
            )?;
        }
        if let Some(e) = &self.last_error {
            write!(f, "; last error: {e}")?;
        }
        Ok(())
    }
}

/// One sink's end of the queue, and its counters.
type Lane = (mpsc::Sender<Arc<Record>>, Arc<Stats>);

/// A cheap, cloneable handle that emits into every sink of a set; give one to the
/// runner's observer and keep the [`Sinks`] for shutdown.
#[derive(Clone, Default)]
pub struct Emitter {
    lanes: Arc<[Lane]>,
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Emitter({} sinks)", self.lanes.len())
    }
}

impl Emitter {
    /// Queue a record for every sink. Never blocks: a full queue drops the record
    /// (counted in the report). Callable from any thread, inside a runtime or not.
    pub fn emit(&self, r: &Record) {
        if self.lanes.is_empty() {
            return;
        }
        let shared = Arc::new(r.clone());
        for (tx, stats) in self.lanes.iter() {
            stats.accepted.fetch_add(1, Ordering::Relaxed);
            if tx.try_send(Arc::clone(&shared)).is_err() {
                stats.accepted.fetch_sub(1, Ordering::Relaxed);
                stats.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

struct Task {
    name: String,
    stats: Arc<Stats>,
    handle: JoinHandle<()>,
}

/// The sinks configured for a run. Call [`Sinks::shutdown`] at the end; dropped
/// without it, the tasks deliver what is queued and stop once every [`Emitter`] is
/// gone (or with the runtime).
pub struct Sinks {
    tasks: Vec<Task>,
    senders: Vec<Lane>,
    emitter: Emitter,
    close: watch::Sender<Option<Instant>>,
    warnings: Vec<String>,
}

impl fmt::Debug for Sinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.tasks.iter().map(|t| &t.name))
            .finish()
    }
}

impl Default for Sinks {
    fn default() -> Sinks {
        Sinks::none()
    }
}

impl Sinks {
    /// No sinks: `emit` does nothing, `shutdown` returns at once.
    pub fn none() -> Sinks {
        Sinks {
            tasks: Vec::new(),
            senders: Vec::new(),
            emitter: Emitter::default(),
            close: watch::channel(None).0,
            warnings: Vec::new(),
        }
    }

    /// Build and start the configured sinks, reading `OTEL_*` from the process
    /// environment. Must be called inside a tokio runtime.
    pub fn from_config(cfg: &[SinkConfig]) -> Result<Sinks, String> {
        Sinks::from_config_with_env(cfg, &|k| std::env::var(k).ok())
    }

    /// As [`Sinks::from_config`], with the environment given (tests, precedence).
    /// Every problem of every sink is reported at once, one per line.
    pub fn from_config_with_env(
        cfg: &[SinkConfig],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Sinks, String> {
        let label = |i: usize, c: &SinkConfig| format!("sink {} ({})", i + 1, c.kind());
        let problems: Vec<String> = cfg
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                c.validate()
                    .into_iter()
                    .map(move |p| format!("{}: {p}", label(i, c)))
            })
            .collect();
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        let mut sinks = Sinks::none();
        if cfg.is_empty() {
            return Ok(sinks);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err("sinks need a running tokio runtime".into());
        }
        // TLS roots are loaded only when some destination may be https://.
        let https = |u: &str| u.trim().to_ascii_lowercase().starts_with("https://");
        let tls = cfg.iter().any(|c| match c {
            SinkConfig::Jsonl { .. } => false,
            SinkConfig::Http { url, .. } | SinkConfig::Humio { url, .. } => https(url),
            SinkConfig::Otlp { endpoint, .. } => endpoint.as_deref().map_or_else(
                || {
                    let logs = otel_env::signal(Signal::Logs, env, &Default::default());
                    logs.endpoint.is_some_and(|e| https(&e.url))
                },
                https,
            ),
        });
        let mut shared: Option<reqwest::Client> = None;
        let mut client = || -> Result<reqwest::Client, String> {
            if shared.is_none() {
                shared = Some(http::client(tls)?);
            }
            Ok(shared.clone().expect("set above"))
        };
        let sdk_disabled = otel_env::sdk_disabled(env);
        for (i, c) in cfg.iter().enumerate() {
            let mut policy = c.policy();
            let err = |e: String| format!("{}: {e}", label(i, c));
            match c {
                SinkConfig::Jsonl { path } => {
                    sinks.add(jsonl::JsonlSink::open(path).map_err(err)?, policy)?
                }
                SinkConfig::Http {
                    url,
                    headers,
                    format,
                    wrap,
                    labels,
                    ..
                } => {
                    let encoder = match format {
                        HttpFormat::Array => http::Encoder::Array { wrap: wrap.clone() },
                        HttpFormat::Loki => http::Encoder::Loki {
                            labels: labels.clone(),
                        },
                        HttpFormat::SplunkHec => http::Encoder::SplunkHec {
                            labels: labels.clone(),
                            host: crate::run::journal::node(),
                        },
                    };
                    let sink =
                        http::HttpSink::new(&client()?, "http", url, &headers.0, None, encoder)
                            .map_err(err)?;
                    sinks.add(sink, policy)?
                }
                SinkConfig::Humio {
                    url, token, tags, ..
                } => {
                    let sink = humio::sink(&client()?, url, &token.0, tags).map_err(err)?;
                    sinks.add(sink, policy)?
                }
                SinkConfig::Otlp { .. } if sdk_disabled => sinks.warnings.push(err(
                    "not started: OTEL_SDK_DISABLED=true turns every OpenTelemetry signal off"
                        .into(),
                )),
                SinkConfig::Otlp {
                    endpoint,
                    protocol,
                    headers,
                    timeout,
                    ..
                } => {
                    let target = otlp::resolve(endpoint.as_deref(), *protocol, &headers.0, env)
                        .map_err(err)?;
                    if timeout.is_none() {
                        if let Some(t) = target.timeout {
                            policy.timeout = t;
                        }
                    }
                    sinks
                        .warnings
                        .extend(target.warnings.iter().map(|w| err(w.clone())));
                    match otlp::build(&client()?, target, env).map_err(err)? {
                        otlp::Built::Http(s) => sinks.add(s, policy)?,
                        otlp::Built::Grpc(s) => sinks.add(s, policy)?,
                    }
                }
            }
        }
        Ok(sinks)
    }

    /// Start one more sink (any [`Sink`] implementation) with this policy, on a
    /// task of the current tokio runtime (an error outside one).
    pub fn add<S: Sink>(&mut self, sink: S, policy: Policy) -> Result<(), String> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err("sinks need a running tokio runtime".into());
        }
        let (tx, rx) = mpsc::channel(policy.queue_size.max(1));
        let stats = Arc::new(Stats::default());
        let name = sink.name();
        let handle = tokio::spawn(pipeline::run(
            sink,
            rx,
            policy,
            Arc::clone(&stats),
            self.close.subscribe(),
        ));
        self.senders.push((tx, Arc::clone(&stats)));
        self.emitter = Emitter {
            lanes: self.senders.clone().into(),
        };
        self.tasks.push(Task {
            name,
            stats,
            handle,
        });
        Ok(())
    }

    /// No sink configured.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The sinks' names, in configuration order.
    pub fn names(&self) -> Vec<String> {
        self.tasks.iter().map(|t| t.name.clone()).collect()
    }

    /// Things worth telling the user that did not prevent building the sinks.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// A handle to emit from elsewhere (an observer). Take it after the last `add`.
    pub fn emitter(&self) -> Emitter {
        self.emitter.clone()
    }

    /// Queue a record for every sink; never blocks, never waits (see [`Emitter::emit`]).
    pub fn emit(&self, r: &Record) {
        self.emitter.emit(r)
    }

    /// Deliver what can be delivered within `limit` (all sinks together, in
    /// parallel), then give up. Returns at most about `limit` + 100 ms later, with
    /// one report per sink, in configuration order.
    pub async fn shutdown(self, limit: Duration) -> Vec<SinkReport> {
        let deadline = Instant::now() + limit;
        self.close.send_replace(Some(deadline));
        let mut reports = Vec::with_capacity(self.tasks.len());
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline + SHUTDOWN_SLACK, &mut t.handle)
                .await
                .is_err()
            {
                t.handle.abort();
                t.stats
                    .error("aborted at the shutdown deadline".to_string());
            }
            reports.push(report(t.name, &t.stats));
        }
        reports
    }
}

fn report(name: String, s: &Stats) -> SinkReport {
    let accepted = s.accepted.load(Ordering::Relaxed);
    let delivered = s.delivered.load(Ordering::Relaxed);
    let failed = s.failed.load(Ordering::Relaxed);
    let queue_full = s.queue_full.load(Ordering::Relaxed);
    let unsent = accepted.saturating_sub(delivered + failed);
    SinkReport {
        name,
        delivered,
        dropped: queue_full + failed + unsent,
        queue_full,
        failed,
        unsent,
        last_error: s.last_error.lock().ok().and_then(|e| e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(yaml: &str) -> Result<Vec<SinkConfig>, String> {
        let v: Value = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        serde_json::from_value(v["sinks"].clone()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_settings_parse_and_validate() {
        let doc = include_str!("mod.rs");
        let yaml: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.strip_prefix("//! ").unwrap_or("")))
            .collect();
        let cfg = parse(&yaml).unwrap();
        assert_eq!(cfg.len(), 6);
        for c in &cfg {
            assert!(c.validate().is_empty(), "{:?}: {:?}", c, c.validate());
        }
        assert!(matches!(
            &cfg[2],
            SinkConfig::Http { format: HttpFormat::Loki, labels, .. } if labels["env"] == "staging"
        ));
        assert!(matches!(
            &cfg[5],
            SinkConfig::Otlp {
                protocol: Some(OtlpProtocol::HttpProtobuf),
                retries: Some(2),
                ..
            }
        ));
        // Debug never shows a credential.
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("Bearer abc"), "{debug}");
        assert!(!debug.contains("00000000-0000"), "{debug}");
        assert!(!debug.contains("ingest token"), "{debug}");
    }

    #[test]
    fn unknown_keys_and_types_are_errors() {
        let e = parse("sinks: [{type: http, url: 'http://x', bogus: 1}]").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = parse("sinks: [{type: kafka}]").unwrap_err();
        assert!(e.contains("kafka"), "{e}");
        let e = parse("sinks: [{type: otlp, protocol: thrift}]").unwrap_err();
        assert!(e.contains("thrift"), "{e}");
    }

    #[test]
    fn validation_reports_every_problem() {
        let cfg = parse(
            "sinks:\n\
             - {type: http, url: 'ftp://x', wrap: r, format: loki, batch_size: 0}\n\
             - {type: humio, token: ' '}\n\
             - {type: otlp, protocol: grpc, headers: {'bad key': b}}\n",
        )
        .unwrap();
        let e = Sinks::from_config_with_env(&cfg, &|_| None).unwrap_err();
        assert!(e.contains("sink 1 (http): url 'ftp://x'"), "{e}");
        assert!(e.contains("sink 1 (http): wrap only applies"), "{e}");
        assert!(e.contains("sink 1 (http): batch_size"), "{e}");
        assert!(e.contains("sink 2 (humio): token is empty"), "{e}");
        assert!(
            e.contains("sink 3 (otlp): header 'bad key' cannot be sent as gRPC metadata"),
            "{e}"
        );
    }

    #[test]
    fn record_from_event_and_redaction() {
        let e = Event::ActivityEnded {
            name: "kill".into(),
            phase: crate::run::Phase::Method,
            succeeded: false,
            error: Some("token s3cr3t-value refused".into()),
            output: Value::Null,
        };
        let r = Record::new(&e, "run-1", "title s3cr3t-value")
            .with_trace(Some("a".repeat(32)), Some("b".repeat(16)))
            .redacted(&Redactor::new(["s3cr3t-value".to_string()]));
        assert_eq!(r.trace_id.as_deref(), Some("a".repeat(32).as_str()));
        let ids = TraceIds {
            trace_id: "c".repeat(32),
            span_id: "d".repeat(16),
        };
        let t = Record::new(&e, "r", "t").traced(Some(&ids));
        assert_eq!(t.span_id.as_deref(), Some("d".repeat(16).as_str()));
        assert_eq!(r.event, "activity.failed");
        assert_eq!(r.level, "ERROR");
        assert_eq!(r.experiment, "title ***");
        assert_eq!(r.fields["error"], json!("token *** refused"));
        assert!(!serde_json::to_string(&r).unwrap().contains("s3cr3t"));
        let v = serde_json::to_value(Record::new(&e, "r", "t")).unwrap();
        assert!(v.get("trace_id").is_none());
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "time",
                "level",
                "event",
                "message",
                "run_id",
                "experiment",
                "fields"
            ]
        );
    }

    #[tokio::test]
    async fn no_sinks_is_free() {
        let s = Sinks::from_config_with_env(&[], &|_| None).unwrap();
        assert!(s.is_empty());
        s.emit(&testkit::record(0));
        assert!(s.shutdown(DEFAULT_SHUTDOWN_LIMIT).await.is_empty());
    }

    #[test]
    fn building_outside_a_runtime_is_an_error_not_a_panic() {
        let cfg = vec![SinkConfig::Jsonl {
            path: std::env::temp_dir().join("faultline-sink-no-runtime.jsonl"),
        }];
        let e = Sinks::from_config_with_env(&cfg, &|_| None).unwrap_err();
        assert!(e.contains("tokio runtime"), "{e}");
    }

    #[tokio::test]
    async fn otel_sdk_disabled_turns_the_otlp_sink_off_with_a_warning() {
        let cfg = parse("sinks: [{type: otlp}]").unwrap();
        let env = |k: &str| (k == "OTEL_SDK_DISABLED").then(|| "TRUE".to_string());
        let sinks = Sinks::from_config_with_env(&cfg, &env).unwrap();
        assert!(sinks.is_empty());
        assert!(
            sinks.warnings()[0].contains("OTEL_SDK_DISABLED"),
            "{:?}",
            sinks.warnings()
        );
    }

    #[tokio::test]
    async fn building_is_cheap() {
        let cfg = parse(
            "sinks: [{type: humio, token: t}, {type: otlp}, {type: otlp, protocol: grpc}, \
             {type: http, url: 'https://x.example/'}]",
        )
        .unwrap();
        let t = std::time::Instant::now();
        let sinks = Sinks::from_config_with_env(&cfg, &|_| None).unwrap();
        println!("building 4 network sinks took {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
        println!("shutting down 4 idle sinks took {:?}", t.elapsed());
        assert!(reports.iter().all(SinkReport::is_clean), "{reports:?}");
    }

    #[test]
    fn report_line() {
        let r = SinkReport {
            name: "http http://x/".into(),
            delivered: 3,
            dropped: 5,
            queue_full: 1,
            failed: 2,
            unsent: 2,
            last_error: Some("HTTP 500".into()),
        };
        assert_eq!(
            r.to_string(),
            "http http://x/: 3 delivered, 5 dropped (1 queue full, 2 failed, 2 unsent at the deadline); last error: HTTP 500"
        );
        assert!(!r.is_clean());
    }
}
