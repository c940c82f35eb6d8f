//! faultline: an observability-first chaos engineering runner.
//!
//! faultline runs [Chaos Toolkit](https://chaostoolkit.org) experiments (JSON or YAML:
//! steady-state hypothesis, method, rollbacks) compatibly with `chaos run`, without its
//! known defects: it never crashes mid-run, always writes the journal, always plays
//! rollbacks according to the strategy, and never writes a secret value anywhere.
//!
//! The flow (see `docs/architecture.md`):
//! load ([`experiment::load`]) → parse and validate, all problems at once
//! ([`experiment::parse`]) → resolve configuration and secrets ([`experiment::config`])
//! → run ([`run::Runner`]) → journal ([`run::journal`]).
//!
//! The library never prints and never exits: it reports through [`control::Control`]s
//! and returns values; the binary decides what to print and the exit code
//! ([`exit::ExitCode`]).

pub mod alerts;
pub mod app;
pub mod catalog;
pub mod control;
pub mod duration;
pub mod event;
pub mod exit;
pub mod experiment;
pub mod killswitch;
pub mod provider;
pub mod redact;
pub mod report;
pub mod run;
pub mod schedule;
pub mod server;
pub mod settings;
pub mod sink;
pub mod slo;
pub mod store;
pub mod telemetry;
pub mod timefmt;
// The HTTP test server shared with the integration tests (one file, included by path
// from both; see docs/architecture.md, "Test servers").
mod layering;
#[cfg(test)]
#[path = "../tests/support/http_server.rs"]
pub(crate) mod test_http;
pub mod tls;
