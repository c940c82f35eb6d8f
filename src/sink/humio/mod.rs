//! The Humio / LogScale sink: structured ingest, in the shape `chaoshumio.control`
//! sends, so existing Humio searches and dashboards keep working.
//!
//! chaoshumio tags each request with `level` = the event name and `type` = what it
//! is about; faultline does the same per event (one payload element per event name
//! in a batch) with `provider: faultline`, and puts the whole record, fields
//! flattened, in `attributes`.
//!
//! Files: `config.rs` (settings and their validation), `encoder.rs` (the structured
//! ingest body), `sink.rs` (the shared HTTP transport with a bearer token),
//! `tests.rs`.

mod config;
mod encoder;
mod sink;
#[cfg(test)]
mod tests;

pub use config::HumioConfig;
pub(crate) use sink::build;
