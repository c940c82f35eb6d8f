//! The generic HTTP sink: batched `POST`s of records as a JSON array (optionally
//! wrapped), Grafana Loki's push body, or Splunk HEC events, with custom headers.
//!
//! Files: `config.rs` (settings and their validation), `encoder.rs` (the three body
//! shapes), `sink.rs` (building the shared HTTP transport with them), `tests.rs`.

mod config;
mod encoder;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{HttpConfig, HttpFormat};
pub(crate) use sink::build;
