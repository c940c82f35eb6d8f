//! Integration tests: the real `faultline` binary against real processes and real HTTP
//! servers on 127.0.0.1. One binary, one module per area.

mod common;
mod concurrent;
mod controls;
mod examples;
mod hardening;
mod limits;
mod method;
mod metrics;
mod otlp;
mod outcomes;
mod providers;
mod safeguards;
mod secrets;
mod signals;
mod sinks;
mod strategies;
mod tolerances;
mod tracing;
mod validate;
