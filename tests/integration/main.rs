//! Integration tests: the real `faultline` binary against real processes and real HTTP
//! servers on 127.0.0.1. One binary, one module per area.

mod alerts;
mod annotations;
mod canary;
mod catalog;
mod common;
mod concurrent;
mod controls;
mod dashboards;
mod examples;
mod hardening;
mod history;
// The HTTP test server, shared with the library's unit tests by path.
#[path = "../support/http_server.rs"]
mod http_server;
mod kill;
mod kubernetes;
mod limits;
mod method;
mod metrics;
mod otlp;
mod outcomes;
mod prom;
mod prometheus;
mod providers;
mod python;
mod remote_write;
mod report;
mod run_metrics;
mod safeguards;
mod schedule;
mod secrets;
mod server;
mod signals;
mod sinks;
mod slo_cli;
mod slo_eval;
mod slo_providers;
mod store;
mod strategies;
mod tolerances;
mod tracing;
mod validate;
