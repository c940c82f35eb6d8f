//! Structured log sinks: every lifecycle event, as one [`Record`], shipped to files
//! and log backends without ever slowing or breaking the run.
//!
//! A run configures a set of [`Sinks`] from the settings file (`sinks:`) and from
//! controls (`chaoshumio.control` becomes a [`SinkConfig::Humio`]). A [`SinksLayer`]
//! on the run's `tracing` subscriber turns each lifecycle event into a [`Record`] and
//! calls an [`Emitter`] (a clone of [`Sinks::emit`]'s) with it: it never blocks,
//! it only puts the record in a bounded queue per sink, and counts it as dropped when
//! the queue is full (the `otlp` sink has its own layer instead: see below).
//! Background tokio tasks batch, send and retry. At the end,
//! [`Sinks::shutdown`] delivers what it can within a time limit (1.5 s by default,
//! for all sinks together) and returns a [`SinkReport`] per sink.
//!
//! The console is not a sink here: it is the CLI's own layer on the run's subscriber.
//!
//! # Sinks
//!
//! | `type` | what | body |
//! |---|---|---|
//! | `jsonl` | append to a file, one JSON [`Record`] per line (parent dirs created) | |
//! | `http` | batched `POST` with custom headers | `format: array` (default), `loki`, `splunk-hec` |
//! | `humio` | `POST {url}/api/v1/ingest/humio-structured`, `Authorization: Bearer <token>` | the chaoshumio shape |
//! | `otlp` | OTLP logs: `grpc`, `http/protobuf`, `http/json` | `ExportLogsServiceRequest`, made and sent by the OpenTelemetry SDK |
//!
//! Every sink shares one machinery ([`Policy`], see `pipeline.rs`): a queue of
//! 10,000 records, batches of up to 500 records or 200 ms, a 2 s timeout per request
//! (never past the shutdown deadline), 3 retries with exponential backoff (100, 200,
//! 400 ms) on connection errors, timeouts, 408, 429 and 5xx; other 4xx fail the batch
//! at once. `batch_size`, `queue_size`, `timeout` (seconds) and `retries` can be set
//! per network sink.
//!
//! Except `otlp`: its records come through `opentelemetry-appender-tracing` (a layer
//! on the run's dispatcher, [`Sinks::layers`]) and the OpenTelemetry SDK batches and
//! sends them (`otlp/sdk.rs`) with the same settings (queue, batch, 200 ms delay,
//! timeout, retries), but the SDK's retry rules (OTLP's: 429, 502, 503, 504 and
//! gRPC's retryable codes; a 500 is not retried) and its report has no `queue full`
//! count (records the SDK's full queue dropped are `unsent`). A retry that succeeds is
//! not reported as an error.
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
//! - `otlp`: as the SDK's exporter groups them: resource `service.name` =
//!   `OTEL_SERVICE_NAME` or `faultline`, `service.version`, `OTEL_RESOURCE_ATTRIBUTES`;
//!   scope `faultline` (with the crate version); one `LogRecord` per lifecycle event:
//!   `time_unix_nano` = `observed_time_unix_nano` (when the event was emitted),
//!   `severity_number` (DEBUG 5, INFO 9, WARNING 13, ERROR 17, CRITICAL 21),
//!   `severity_text`, `body` = message, `event_name` = event, `trace_id`/`span_id`
//!   bytes, attributes `event.name`, `chaos.run.id`, `chaos.experiment.title` and
//!   each field as `chaos.<field>` (nested objects flattened with dots, nulls left
//!   out).
//!
//! # OTLP endpoint resolution
//!
//! By `crate::telemetry::otel_env`, the resolver traces use too. For each of
//! endpoint, protocol and timeout: the sink's own key, else
//! `OTEL_EXPORTER_OTLP_LOGS_*`, else `OTEL_EXPORTER_OTLP_*`, else the default
//! (`http/protobuf`, `http://localhost:4318/v1/logs`, or `http://localhost:4317` for
//! gRPC). Over HTTP, `/v1/logs` is appended to the sink's `endpoint` (unless it
//! already ends with it) and to `OTEL_EXPORTER_OTLP_ENDPOINT`;
//! `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` is used verbatim. Headers:
//! `OTEL_EXPORTER_OTLP_LOGS_HEADERS` replaces `OTEL_EXPORTER_OTLP_HEADERS`, and the
//! sink's `headers` replace entries of the same name. A malformed `OTEL_*` value is a
//! warning and the next source is used; an endpoint that is not an `http(s)` URL is an
//! error. `OTEL_SDK_DISABLED=true` (only that value) leaves the sink off. gRPC is
//! plaintext (`http://`: faultline's tonic build has no TLS) and sends the headers as
//! metadata; use `http/protobuf` for TLS collectors.
//!
//! # Secrets
//!
//! Records must be redacted by the caller ([`Record::redacted`]). Header values and
//! the Humio token are masked in every error text a sink reports, and never appear in
//! a sink's name or in `Debug` output.
//!
//! # Layout
//!
//! One folder per sink kind, with fixed file roles (as vector's `src/sinks/*`):
//! `config.rs` (the serde settings and their pure validation), `encoder.rs` (a batch
//! as a body), `sink.rs` (the [`Sink`] or the shared transport built with the
//! encoder), `tests.rs`; `mod.rs` re-exports. Shared: `record.rs` ([`Record`]),
//! `pipeline.rs` ([`Sink`], batching, retries, deadline), `layer.rs` ([`SinksLayer`]:
//! lifecycle `tracing` events into records), `options.rs` (secrets,
//! headers, tuning keys), `transport.rs` (the HTTP POST every network sink but gRPC
//! uses), `sinks.rs` (the running set: queues, [`Emitter`], shutdown). Folders import
//! shared code and never each other; shared code imports no folder, except
//! `registry.rs`, the one place that builds sinks from [`SinkConfig`].

mod http;
mod humio;
mod jsonl;
mod layer;
mod options;
mod otlp;
mod pipeline;
mod record;
mod registry;
mod sinks;
#[cfg(test)]
mod testkit;
mod transport;

pub use http::{HttpConfig, HttpFormat};
pub use humio::HumioConfig;
pub use jsonl::JsonlConfig;
pub use layer::SinksLayer;
pub use options::{Headers, Secret};
pub use otlp::{OtlpConfig, OtlpProtocol};
pub use pipeline::{Policy, SendError, Sink};
pub use record::{Batch, Record};
pub use registry::SinkConfig;
pub use sinks::{Emitter, SinkReport, Sinks, DEFAULT_SHUTDOWN_LIMIT};
