//! Run metrics for Prometheus, as `chaosprometheus.metrics` pushes them: the same
//! metric names and labels, so existing dashboards keep working, pushed to a
//! Pushgateway when the experiment starts (in progress) and when it ends (status,
//! deviation, duration).
//!
//! Arguments (as the python control's): `pushgateway_url` (default
//! `http://localhost:9091`), `job` (default `chaostoolkit`), `grouping_key` (default
//! `{chaostoolkit_experiment_ref: <hash of the experiment>}`), `trace_id` (default: the
//! run's trace id, so a metric leads to its trace), `experiment_ref`.
//!
//! The exposition comes from `metrics` and `metrics-exporter-prometheus` with a
//! recorder of this control's own (never the process-wide one: two runs in one process
//! keep their metrics apart). Pushing is an HTTP `PUT` through `reqwest` with a 1 s
//! limit on each push, so a dead or silent gateway costs at most about 2 s in all and
//! never changes the run: failures are reported as warnings at the end.

use super::pushgateway::{self, Gateway};
use super::{Control, Decision, Hook, RunInfo};
use crate::run::Status;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// 1 while the run is in progress, 0 after.
pub const INPROGRESS: &str = "chaostoolkit_inprogress_experiment";
/// 1 for the run's status (one series per status, labelled by this same name).
pub const STATUS: &str = "chaostoolkit_experiment_status";
/// 1 when the run deviated.
pub const DEVIATED: &str = "chaostoolkit_deviated_experiment_total";
/// The run's duration in seconds.
pub const DURATION: &str = "chaostoolkit_experiment_duration";
/// The run's duration in seconds, as a histogram.
pub const DURATION_DIST: &str = "chaostoolkit_experiment_duration_dist";

/// The statuses the status gauge has a series for, in the Chaos Toolkit's order.
const STATUSES: [Status; 4] = [
    Status::Completed,
    Status::Failed,
    Status::Aborted,
    Status::Interrupted,
];

/// Histogram buckets of `prometheus_client`'s default (seconds).
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Pushes the run's metrics to a Pushgateway.
pub struct RunMetrics {
    gateway: Gateway,
    grouping: Option<BTreeMap<String, String>>,
    trace_id: Option<String>,
    experiment_ref: Option<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// This run's own recorder, its labels set as global labels (built by `configure`).
    recorder: Option<PrometheusRecorder>,
    grouping: BTreeMap<String, String>,
    started: Option<Instant>,
    errors: Vec<String>,
}

/// A stable hash of the experiment (FNV-1a over its JSON), as the experiment's ref.
fn experiment_ref(v: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A recorder whose every metric carries `labels`, with the duration histogram's
/// buckets (without them the exporter renders a summary).
fn recorder(labels: &[(String, String)]) -> PrometheusRecorder {
    // Fails only for an empty bucket list, and BUCKETS is not empty.
    let mut b = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DURATION_DIST.to_string()), &BUCKETS)
        .unwrap_or_default();
    for (k, v) in labels {
        b = b.add_global_label(k, v);
    }
    b.build_recorder()
}

/// Record the start: in progress.
fn record_start(rec: &PrometheusRecorder) {
    metrics::with_local_recorder(rec, || {
        metrics::describe_gauge!(INPROGRESS, "Chaos Toolkit experiments in progress");
        metrics::gauge!(INPROGRESS).set(1.0);
    });
}

/// Record the end: no longer in progress, the status, deviation and duration.
fn record_end(rec: &PrometheusRecorder, status: Status, deviated: bool, seconds: f64) {
    metrics::with_local_recorder(rec, || {
        metrics::describe_gauge!(INPROGRESS, "Chaos Toolkit experiments in progress");
        metrics::gauge!(INPROGRESS).set(0.0);
        metrics::describe_gauge!(STATUS, "Chaos Toolkit experiment runs status");
        for s in STATUSES {
            let v = if s == status { 1.0 } else { 0.0 };
            metrics::gauge!(STATUS, STATUS => s.as_str()).set(v);
        }
        metrics::describe_counter!(DEVIATED, "Chaos Toolkit deviated experiments");
        metrics::counter!(DEVIATED).increment(u64::from(deviated));
        metrics::describe_gauge!(DURATION, "Chaos Toolkit experiment duration");
        metrics::gauge!(DURATION).set(seconds);
        metrics::describe_histogram!(
            DURATION_DIST,
            "Chaos Toolkit experiment duration distribution"
        );
        metrics::histogram!(DURATION_DIST).record(seconds);
    });
}

impl RunMetrics {
    /// From the control's `arguments`.
    pub fn from_arguments(args: &Value) -> RunMetrics {
        let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
        RunMetrics {
            gateway: Gateway::new(
                text("pushgateway_url").unwrap_or_else(|| "http://localhost:9091".into()),
                text("job").unwrap_or_else(|| "chaostoolkit".into()),
            ),
            grouping: args
                .get("grouping_key")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_string),
                            )
                        })
                        .collect()
                }),
            trace_id: text("trace_id"),
            experiment_ref: text("experiment_ref"),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `PUT` the exposition `body` under this grouping key, within [`pushgateway::LIMIT`].
    async fn push(&self, grouping: &BTreeMap<String, String>, body: String) -> Result<(), String> {
        self.gateway.put(grouping, body).await
    }

    /// Errors met while pushing, for the CLI to report.
    pub fn errors(&self) -> Vec<String> {
        self.state().errors.clone()
    }
}

impl Control for RunMetrics {
    fn name(&self) -> &str {
        "prometheus metrics"
    }

    fn configure(&self, run: &RunInfo) {
        let mut st = self.state();
        let reference = self
            .experiment_ref
            .clone()
            .unwrap_or_else(|| experiment_ref(&run.experiment));
        let labels = [
            ("source".to_string(), "faultline".to_string()),
            (
                "chaostoolkit_lib_version".into(),
                env!("CARGO_PKG_VERSION").into(),
            ),
            (
                "chaostoolkit_run_trace_id".into(),
                self.trace_id
                    .clone()
                    .or_else(|| run.trace_id.clone())
                    .unwrap_or_else(|| run.run_id.clone()),
            ),
            ("chaostoolkit_experiment_ref".into(), reference.clone()),
            ("chaos_run_id".into(), run.run_id.clone()),
        ];
        st.recorder = Some(recorder(&labels));
        st.grouping = self.grouping.clone().unwrap_or_else(|| {
            BTreeMap::from([("chaostoolkit_experiment_ref".to_string(), reference)])
        });
    }

    fn before_experiment<'a>(&'a self, _run: &'a RunInfo) -> Hook<'a> {
        Box::pin(async move {
            let (body, grouping) = {
                let mut st = self.state();
                st.started = Some(Instant::now());
                let Some(rec) = &st.recorder else {
                    return Decision::Continue;
                };
                record_start(rec);
                (rec.handle().render(), st.grouping.clone())
            };
            if let Err(e) = self.push(&grouping, body).await {
                self.state().errors.push(e);
            }
            Decision::Continue
        })
    }

    fn after_experiment(&self, _run: &RunInfo, status: Status, deviated: bool) {
        let (body, grouping) = {
            let st = self.state();
            let Some(rec) = &st.recorder else {
                return;
            };
            let seconds = st.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
            record_end(rec, status, deviated, seconds);
            (rec.handle().render(), st.grouping.clone())
        };
        if let Err(e) = pushgateway::blocking(|| self.push(&grouping, body)) {
            self.state().errors.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `name{labels...}` in an exposition, whatever the
    /// labels' order (the exporter's, not ours).
    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labelset, v) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels
                .iter()
                .all(|(k, v)| labelset.split(',').any(|p| p == format!("{k}=\"{v}\"")))
                .then(|| v.trim().parse().ok())?
        })
    }

    fn rendered(status: Status, deviated: bool, seconds: f64) -> String {
        let rec = recorder(&[("source".into(), "faultline".into())]);
        record_start(&rec);
        record_end(&rec, status, deviated, seconds);
        rec.handle().render()
    }

    #[test]
    fn exposition_has_the_chaos_toolkit_names() {
        let b = rendered(Status::Completed, true, 0.3);
        let src = ("source", "faultline");
        assert_eq!(
            value(&b, STATUS, &[src, (STATUS, "completed")]),
            Some(1.0),
            "{b}"
        );
        assert_eq!(
            value(&b, STATUS, &[src, (STATUS, "failed")]),
            Some(0.0),
            "{b}"
        );
        assert_eq!(value(&b, DEVIATED, &[src]), Some(1.0), "{b}");
        assert_eq!(value(&b, INPROGRESS, &[src]), Some(0.0), "{b}");
        assert_eq!(value(&b, DURATION, &[src]), Some(0.3), "{b}");
        let bucket = &format!("{DURATION_DIST}_bucket");
        assert_eq!(value(&b, bucket, &[src, ("le", "0.5")]), Some(1.0), "{b}");
        assert_eq!(value(&b, bucket, &[src, ("le", "0.25")]), Some(0.0), "{b}");
        assert_eq!(value(&b, bucket, &[src, ("le", "+Inf")]), Some(1.0), "{b}");
        assert_eq!(
            value(&b, &format!("{DURATION_DIST}_count"), &[src]),
            Some(1.0)
        );
        for line in [
            "# TYPE chaostoolkit_inprogress_experiment gauge",
            "# TYPE chaostoolkit_experiment_status gauge",
            "# TYPE chaostoolkit_deviated_experiment_total counter",
            "# TYPE chaostoolkit_experiment_duration gauge",
            "# TYPE chaostoolkit_experiment_duration_dist histogram",
            "# HELP chaostoolkit_experiment_status Chaos Toolkit experiment runs status",
        ] {
            assert!(b.lines().any(|l| l == line), "{line} missing:\n{b}");
        }
    }

    #[test]
    fn a_run_that_did_not_deviate_still_has_its_deviation_counter_at_zero() {
        let b = rendered(Status::Failed, false, 12.0);
        assert_eq!(value(&b, DEVIATED, &[]), Some(0.0), "{b}");
        assert_eq!(value(&b, STATUS, &[(STATUS, "failed")]), Some(1.0), "{b}");
        let bucket = &format!("{DURATION_DIST}_bucket");
        assert_eq!(value(&b, bucket, &[("le", "10")]), Some(0.0), "{b}");
    }

    #[test]
    fn two_runs_keep_their_metrics_apart() {
        let a = recorder(&[("chaos_run_id".into(), "a".into())]);
        let b = recorder(&[("chaos_run_id".into(), "b".into())]);
        record_start(&a);
        record_end(&b, Status::Aborted, false, 1.0);
        let (ra, rb) = (a.handle().render(), b.handle().render());
        assert_eq!(value(&ra, INPROGRESS, &[("chaos_run_id", "a")]), Some(1.0));
        assert!(!ra.contains(STATUS) && !ra.contains("\"b\""), "{ra}");
        assert_eq!(value(&rb, INPROGRESS, &[("chaos_run_id", "b")]), Some(0.0));
        assert!(!rb.contains("\"a\""), "{rb}");
    }

    /// Both pushes of a run, on a runtime of this flavour, as the test server got them.
    async fn pushes_of_one_run() -> Vec<crate::test_http::Request> {
        let srv = crate::test_http::Server::start(|_| crate::test_http::Response::status(200));
        let m = RunMetrics::from_arguments(&serde_json::json!({
            "pushgateway_url": srv.url("/gw"), "job": "j", "trace_id": "t1",
        }));
        let run = RunInfo {
            run_id: "r1".into(),
            title: "t".into(),
            experiment: serde_json::json!({"title": "t"}),
            trace_id: None,
            labels: Default::default(),
            experiment_ref: String::new(),
            started: chrono::Utc::now(),
            ended: None,
            duration: None,
            journal: None,
        };
        m.configure(&run);
        m.before_experiment(&run).await;
        m.after_experiment(&run, Status::Completed, false);
        assert!(m.errors().is_empty(), "{:?}", m.errors());
        srv.requests()
    }

    fn check_pushes(reqs: &[crate::test_http::Request]) {
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        let reference = experiment_ref(&serde_json::json!({"title": "t"}));
        for r in reqs {
            assert_eq!(r.method, "PUT");
            assert_eq!(
                r.path,
                format!("/gw/metrics/job/j/chaostoolkit_experiment_ref/{reference}")
            );
            assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
        }
        let labels = [("chaostoolkit_run_trace_id", "t1"), ("chaos_run_id", "r1")];
        let (start, end) = (reqs[0].text(), reqs[1].text());
        assert_eq!(value(&start, INPROGRESS, &labels), Some(1.0), "{start}");
        assert!(!start.contains(STATUS), "{start}");
        assert_eq!(value(&end, INPROGRESS, &labels), Some(0.0), "{end}");
        let done = [labels[0], (STATUS, "completed")];
        assert_eq!(value(&end, STATUS, &done), Some(1.0), "{end}");
    }

    #[tokio::test]
    async fn both_pushes_on_a_current_thread_runtime() {
        check_pushes(&pushes_of_one_run().await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_pushes_on_a_multi_threaded_runtime() {
        check_pushes(&pushes_of_one_run().await);
    }
}
