//! The native `prometheus` provider: PromQL probes, instant or over a range, with every
//! series kept as evidence; and `chaosprometheus.probes.query` / `query_interval` run
//! natively with the Chaos Toolkit's arguments and output.

pub mod client;
