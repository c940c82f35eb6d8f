//! The JSON-lines file sink: one [`Record`](super::Record) per line, appended.
//!
//! The file is opened when the sinks are built (so an unwritable path is a settings
//! error before the run, not a silent loss), written once per batch with async I/O,
//! and flushed at shutdown. Write errors are not retried: a full disk stays full.
//!
//! Files: `config.rs` (settings and their validation), `encoder.rs` (the lines),
//! `sink.rs` (the file), `tests.rs`.

mod config;
mod encoder;
mod sink;
#[cfg(test)]
mod tests;

pub use config::JsonlConfig;
pub(crate) use sink::JsonlSink;
