//! `/metrics`, in the Prometheus text format, through `metrics-exporter-prometheus`
//! with recorders owned by the server (never the process-wide one, so two servers in
//! one process, or a test, keep their own figures):
//! - the server's requests: a counter and a latency histogram (explicit buckets) by
//!   route template, method and status, recorded by [`track`] around every route;
//! - every objective of every organisation: its current value (the newest result's
//!   actual percent), target, met (0/1) and error budget remaining over its own
//!   window (`slo::status`), labelled with its labels and `org`. These are rendered
//!   from a fresh recorder at each scrape, so a deleted objective disappears;
//! - the kill switch: 1 while engaged, read at each scrape;
//! - the run history: runs recorded by status, and per experiment (its newest ten
//!   runs) its grade, freshness and newest run (end time, duration, deviated, status),
//!   labelled with `org`, `experiment`, `experiment_ref` and the newest run's target
//!   labels, so alert rules and dashboards join on `service`.
//!
//! Every name is defined here once and documented in `docs/telemetry.md`.

use super::{native, ServerState};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use std::time::Instant;

/// Requests answered, by `route`, `method`, `status`.
pub const REQUESTS: &str = "faultline_server_requests_total";
/// Seconds from request to answer, by `route`, `method`, `status`.
pub const DURATION: &str = "faultline_server_request_duration_seconds";
/// Requests being answered now, by `route`.
pub const IN_FLIGHT: &str = "faultline_server_requests_in_flight";
/// An objective's newest result's actual percent.
pub const CURRENT: &str = "faultline_slo_current_percent";
/// An objective's target percent.
pub const TARGET: &str = "faultline_slo_target_percent";
/// 1 when the objective is met over its window, else 0 (no indicator: 0).
pub const MET: &str = "faultline_slo_met";
/// The share of the window's error budget left, in percent (negative: overspent).
pub const BUDGET: &str = "faultline_slo_error_budget_remaining_percent";

/// Runs recorded, by `org`, `status`, `deviated`.
pub const RUNS_RECORDED: &str = "faultline_runs_recorded";
/// An experiment's trend grade over its last ten runs: 4 (A) to 1 (D).
pub const GRADE: &str = "faultline_experiment_grade";
/// An experiment's freshness, 0 to 100.
pub const FRESHNESS: &str = "faultline_experiment_freshness";
/// When an experiment's newest run ended (Unix seconds).
pub const LAST_RUN: &str = "faultline_experiment_last_run_timestamp_seconds";
/// How long an experiment's newest run took.
pub const LAST_DURATION: &str = "faultline_experiment_last_run_duration_seconds";
/// 1 when an experiment's newest run deviated.
pub const LAST_DEVIATED: &str = "faultline_experiment_last_run_deviated";
/// 1 for the status of an experiment's newest run (label `status`).
pub const LAST_STATUS: &str = "faultline_experiment_last_run_status";

/// 1 while the kill switch (`/v1/kill`) is engaged, else 0.
pub const KILL_SWITCH: &str = "faultline_kill_switch_engaged";

/// The latency histogram's buckets, in seconds: a durable write is a few ms.
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The server's own request metrics.
pub struct ServerMetrics {
    recorder: PrometheusRecorder,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerMetrics {
    /// A recorder of this server's own.
    pub fn new() -> ServerMetrics {
        // Fails only for an empty bucket list, and BUCKETS is not empty.
        let b = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_string()), &BUCKETS)
            .unwrap_or_default();
        let recorder = b.build_recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!(REQUESTS, "HTTP requests answered by faultline serve");
            metrics::describe_gauge!(IN_FLIGHT, "Requests faultline serve is answering now");
            metrics::describe_histogram!(
                DURATION,
                metrics::Unit::Seconds,
                "Seconds faultline serve took to answer"
            );
        });
        ServerMetrics { recorder }
    }

    /// Count one answered request.
    pub fn record(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let labels = [
            ("route", route.to_string()),
            ("method", method.to_string()),
            ("status", status.to_string()),
        ];
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!(REQUESTS, &labels).increment(1);
            metrics::histogram!(DURATION, &labels).record(seconds);
        });
    }

    /// One more request in flight on `route`, until the guard is dropped (answered,
    /// or its client went away).
    pub fn in_flight(&self, route: &str) -> InFlight<'_> {
        let gauge = metrics::with_local_recorder(
            &self.recorder,
            || metrics::gauge!(IN_FLIGHT, "route" => route.to_string()),
        );
        gauge.increment(1.0);
        InFlight { gauge, _m: self }
    }

    /// The request metrics, rendered.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

/// A request in flight: counted down when dropped.
pub struct InFlight<'a> {
    gauge: metrics::Gauge,
    _m: &'a ServerMetrics,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// Around every route: time it and count it by its template (`/api/v1/orgs/{org}/…`,
/// never the concrete path, so organisations and ids do not multiply series).
pub async fn track(State(st): State<ServerState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let in_flight = st.metrics.in_flight(&route);
    let resp = next.run(req).await;
    drop(in_flight);
    st.metrics.record(
        &route,
        &method,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// `GET /metrics`.
pub async fn scrape(State(st): State<ServerState>) -> Response {
    let mut text = st.metrics.render();
    text.push_str(&kill_switch(st.kill.current().await.is_some()));
    match objectives(&st).await {
        Ok(t) => text.push_str(&t),
        Err(e) => return e.into_response(),
    }
    match runs(&st).await {
        Ok(t) => text.push_str(&t),
        Err(e) => return e.into_response(),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The kill switch's gauge (`on`: read now, through the switch's cache).
fn kill_switch(on: bool) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_gauge!(
            KILL_SWITCH,
            "1 while the kill switch is engaged: runs attached to this server stop, new ones are refused"
        );
        metrics::gauge!(KILL_SWITCH).set(if on { 1.0 } else { 0.0 });
    });
    recorder.handle().render()
}

/// Every objective's gauges, rendered from a recorder made for this scrape.
async fn objectives(st: &ServerState) -> Result<String, super::ApiError> {
    let recorder = PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_gauge!(CURRENT, "The objective's newest result's actual percent");
        metrics::describe_gauge!(TARGET, "The objective's target percent");
        metrics::describe_gauge!(MET, "1 when the objective is met over its window");
        metrics::describe_gauge!(
            BUDGET,
            "The share of the objective's error budget left over its window, in percent"
        );
    });
    let now = chrono::Utc::now();
    for org in st.store.organisations().await? {
        for line in st.store.report(&org, &Default::default(), 1).await? {
            let o = &line.objective;
            let status = native::objective_status(st, &org, o, None, now).await?;
            let mut labels: Vec<(String, String)> = o
                .labels
                .iter()
                // `org` is ours: an objective's own `org` label would clash.
                .map(|(k, v)| {
                    let k = if k == "org" { "label_org" } else { k.as_str() };
                    (k.to_string(), v.clone())
                })
                .collect();
            labels.push(("org".into(), org.clone()));
            metrics::with_local_recorder(&recorder, || {
                if let Some(r) = line.results.first() {
                    metrics::gauge!(CURRENT, &labels).set(r.result.actual_percent);
                }
                metrics::gauge!(TARGET, &labels).set(o.objective_percent);
                metrics::gauge!(MET, &labels).set(if status.met { 1.0 } else { 0.0 });
                if let Some(b) = status.error_budget_remaining_percent {
                    metrics::gauge!(BUDGET, &labels).set(b);
                }
            });
        }
    }
    Ok(recorder.handle().render())
}

/// The run history's gauges, rendered from a recorder made for this scrape.
async fn runs(st: &ServerState) -> Result<String, super::ApiError> {
    use crate::store::scores;
    let recorder = PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_gauge!(RUNS_RECORDED, "Runs recorded in the run history");
        metrics::describe_gauge!(
            GRADE,
            "Trend grade over the last ten runs: 4 A, 3 B, 2 C, 1 D"
        );
        metrics::describe_gauge!(FRESHNESS, "Freshness of the experiment, 0 to 100");
        metrics::describe_gauge!(LAST_RUN, "When the experiment's newest run ended");
        metrics::describe_gauge!(
            LAST_DURATION,
            metrics::Unit::Seconds,
            "How long the experiment's newest run took"
        );
        metrics::describe_gauge!(LAST_DEVIATED, "1 when the experiment's newest run deviated");
        metrics::describe_gauge!(
            LAST_STATUS,
            "1 for the status of the experiment's newest run"
        );
    });
    let now = chrono::Utc::now();
    for org in st.store.run_organisations().await? {
        for c in st.store.run_counts(&org).await? {
            let labels = [
                ("org", org.clone()),
                ("status", c.status.clone()),
                ("deviated", c.deviated.to_string()),
            ];
            metrics::with_local_recorder(&recorder, || {
                metrics::gauge!(RUNS_RECORDED, &labels).set(c.count as f64);
            });
        }
        let latest = st.store.latest_runs(&org, scores::GRADE_RUNS).await?;
        for s in scores::scores(&latest, now, scores::HALF_LIFE) {
            let Some(newest) = latest
                .iter()
                .filter(|r| r.experiment_ref == s.experiment_ref)
                .max_by_key(|r| (r.started, r.ended))
            else {
                continue;
            };
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| {
                    let k = match k.as_str() {
                        "org" | "experiment" | "experiment_ref" | "status" => format!("label_{k}"),
                        _ => k.clone(),
                    };
                    (k, v.clone())
                })
                .collect();
            labels.push(("org".into(), org.clone()));
            labels.push(("experiment".into(), s.title.clone()));
            labels.push(("experiment_ref".into(), s.experiment_ref.clone()));
            let grade = f64::from(b'E' - s.grade as u8);
            let mut status_labels = labels.clone();
            status_labels.push(("status".into(), newest.status.clone()));
            metrics::with_local_recorder(&recorder, || {
                metrics::gauge!(GRADE, &labels).set(grade);
                metrics::gauge!(FRESHNESS, &labels).set(f64::from(s.freshness));
                metrics::gauge!(LAST_RUN, &labels)
                    .set(newest.ended.timestamp_millis() as f64 / 1000.0);
                metrics::gauge!(LAST_DURATION, &labels)
                    .set(newest.duration().num_milliseconds() as f64 / 1000.0);
                metrics::gauge!(LAST_DEVIATED, &labels).set(if newest.deviated {
                    1.0
                } else {
                    0.0
                });
                metrics::gauge!(LAST_STATUS, &status_labels).set(1.0);
            });
        }
    }
    Ok(recorder.handle().render())
}
