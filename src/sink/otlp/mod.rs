//! The OTLP logs sink: records as OpenTelemetry `LogRecord`s, to any collector,
//! over gRPC, HTTP/protobuf or HTTP/JSON, configured like every OTLP exporter: the
//! sink's keys, then `OTEL_EXPORTER_OTLP_LOGS_*`, then `OTEL_EXPORTER_OTLP_*`, as
//! resolved by [`crate::telemetry::otel_env`] for every signal.
//!
//! The HTTP protocols go through the shared HTTP transport; gRPC uses the tonic
//! client generated in `opentelemetry-proto`, with the headers sent as gRPC metadata.
//! TLS (`https://`) is not available over gRPC (use `http/protobuf`).
//!
//! Files: `config.rs` (settings, their validation, and the merge with `OTEL_*`),
//! `encoder.rs` (records as an `ExportLogsServiceRequest`), `sink.rs` (the HTTP or
//! gRPC sink), `tests.rs`.

mod config;
mod encoder;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{OtlpConfig, OtlpProtocol};
pub(crate) use sink::{build, Built};
