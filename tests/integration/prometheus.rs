//! The native `prometheus` provider and the chaosprometheus probes against a real
//! Prometheus (the shared fixture in `prom.rs`), and against the recording HTTP server
//! for what goes on the wire (trace context, credentials).

#[allow(unused_imports)]
use crate::common::*;
use crate::prom;

#[test]
fn the_fixture_serves_counters_histograms_resets_and_stale_series() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let m = prom::Metrics::new("fixture");
    m.requests(9, 1);
    m.observe(0.07);
    m.observe(0.3);
    let sel = m.selector();
    p.wait_for(&format!("sum(http_requests_total{{{sel}}})"), |v| v == 10.0);
    p.wait_for(
        &format!("http_request_duration_seconds_bucket{{{sel},le=\"0.1\"}}"),
        |v| v == 1.0,
    );
    p.wait_for(
        &format!("http_request_duration_seconds_count{{{sel}}}"),
        |v| v == 2.0,
    );
    m.reset();
    p.wait_for(&format!("sum(http_requests_total{{{sel}}})"), |v| v == 0.0);
    m.hide();
    p.wait_empty(&format!("http_requests_total{{{sel}}}"));
}
