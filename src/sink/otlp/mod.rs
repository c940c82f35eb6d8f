//! The OTLP logs sink: records as OpenTelemetry `LogRecord`s, to any collector,
//! over gRPC, HTTP/protobuf or HTTP/JSON, configured like every OTLP exporter: the
//! sink's keys, then `OTEL_EXPORTER_OTLP_LOGS_*`, then `OTEL_EXPORTER_OTLP_*`, as
//! resolved by [`crate::telemetry::otel_env`] for every signal.
//!
//! Unlike the other sinks, it is not a pipeline lane: the run's lifecycle events reach
//! it through `opentelemetry-appender-tracing` (a layer on the run's dispatcher), and
//! the OpenTelemetry SDK batches and exports them (`opentelemetry-otlp`'s log exporter,
//! headers as gRPC metadata over gRPC). TLS (`https://`) is not available over gRPC
//! (use `http/protobuf`).
//!
//! Files: `config.rs` (settings, their validation, and the merge with `OTEL_*`),
//! `sdk.rs` (the bridge, the record's shape, the SDK pipeline and its bounded
//! shutdown), `tests.rs`.

mod config;
mod sdk;
#[cfg(test)]
mod tests;

pub use config::{OtlpConfig, OtlpProtocol};
pub(crate) use sdk::OtlpLogs;
