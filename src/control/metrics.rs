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
//! Pushing is a plain HTTP/1.1 `PUT` with 1 s timeouts (Pushgateways are plain HTTP
//! inside a cluster), so a dead gateway costs at most about 2 s in all and never
//! changes the run: failures are reported as warnings at the end.

use super::{Control, Decision, Hook, RunInfo};
use crate::run::Status;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Histogram buckets of `prometheus_client`'s default (seconds).
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Pushes the run's metrics to a Pushgateway.
pub struct RunMetrics {
    url: String,
    job: String,
    grouping: Option<BTreeMap<String, String>>,
    trace_id: Option<String>,
    experiment_ref: Option<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    labels: Vec<(String, String)>,
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

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl RunMetrics {
    /// From the control's `arguments`.
    pub fn from_arguments(args: &Value) -> RunMetrics {
        let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
        RunMetrics {
            url: text("pushgateway_url").unwrap_or_else(|| "http://localhost:9091".into()),
            job: text("job").unwrap_or_else(|| "chaostoolkit".into()),
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

    fn label_text(labels: &[(String, String)], extra: Option<(&str, &str)>) -> String {
        let mut parts: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if let Some((k, v)) = extra {
            parts.push(format!("{k}=\"{}\"", escape(v)));
        }
        format!("{{{}}}", parts.join(","))
    }

    /// The exposition text for the current state.
    fn body(
        labels: &[(String, String)],
        in_progress: f64,
        end: Option<(Status, bool, f64)>,
    ) -> String {
        let l = Self::label_text(labels, None);
        let mut out = String::new();
        out.push_str(
            "# HELP chaostoolkit_inprogress_experiment Chaos Toolkit experiments in progress\n",
        );
        out.push_str("# TYPE chaostoolkit_inprogress_experiment gauge\n");
        out.push_str(&format!(
            "chaostoolkit_inprogress_experiment{l} {in_progress}\n"
        ));
        if let Some((status, deviated, duration)) = end {
            out.push_str(
                "# HELP chaostoolkit_experiment_status Chaos Toolkit experiment runs status\n",
            );
            out.push_str("# TYPE chaostoolkit_experiment_status gauge\n");
            for s in ["completed", "failed", "aborted", "interrupted"] {
                let v = if s == status.as_str() { 1 } else { 0 };
                out.push_str(&format!(
                    "chaostoolkit_experiment_status{} {v}\n",
                    Self::label_text(labels, Some(("chaostoolkit_experiment_status", s)))
                ));
            }
            out.push_str("# HELP chaostoolkit_deviated_experiment_total Chaos Toolkit deviated experiments\n");
            out.push_str("# TYPE chaostoolkit_deviated_experiment_total counter\n");
            out.push_str(&format!(
                "chaostoolkit_deviated_experiment_total{l} {}\n",
                u8::from(deviated)
            ));
            out.push_str(
                "# HELP chaostoolkit_experiment_duration Chaos Toolkit experiment duration\n",
            );
            out.push_str("# TYPE chaostoolkit_experiment_duration gauge\n");
            out.push_str(&format!("chaostoolkit_experiment_duration{l} {duration}\n"));
            out.push_str("# HELP chaostoolkit_experiment_duration_dist Chaos Toolkit experiment duration distribution\n");
            out.push_str("# TYPE chaostoolkit_experiment_duration_dist histogram\n");
            for b in BUCKETS {
                let c = u8::from(duration <= b);
                out.push_str(&format!(
                    "chaostoolkit_experiment_duration_dist_bucket{} {c}\n",
                    Self::label_text(labels, Some(("le", &b.to_string())))
                ));
            }
            out.push_str(&format!(
                "chaostoolkit_experiment_duration_dist_bucket{} 1\n",
                Self::label_text(labels, Some(("le", "+Inf")))
            ));
            out.push_str(&format!(
                "chaostoolkit_experiment_duration_dist_sum{l} {duration}\n"
            ));
            out.push_str(&format!(
                "chaostoolkit_experiment_duration_dist_count{l} 1\n"
            ));
        }
        out
    }

    /// `PUT {url}/metrics/job/{job}/{k}/{v}...` with the body; 1 s timeouts.
    fn push(&self, grouping: &BTreeMap<String, String>, body: &str) -> Result<(), String> {
        let rest = self
            .url
            .strip_prefix("http://")
            .ok_or_else(|| format!("pushgateway_url must be an http:// URL, got {}", self.url))?;
        let (host, base) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        let mut path = format!("/{}", base.trim_end_matches('/'));
        if path == "/" {
            path.clear();
        }
        path.push_str(&format!("/metrics/job/{}", self.job));
        for (k, v) in grouping {
            path.push_str(&format!("/{k}/{v}"));
        }
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("cannot resolve {host}"))?;
        let limit = Duration::from_secs(1);
        let mut s = TcpStream::connect_timeout(&addr, limit)
            .map_err(|e| format!("cannot reach {}: {e}", self.url))?;
        s.set_read_timeout(Some(limit)).ok();
        s.set_write_timeout(Some(limit)).ok();
        let req = format!(
            "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .map_err(|e| format!("push to {} failed: {e}", self.url))?;
        let mut head = [0u8; 32];
        let n = s
            .read(&mut head)
            .map_err(|e| format!("no answer from {}: {e}", self.url))?;
        let status = String::from_utf8_lossy(&head[..n]);
        let code = status
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        if code.starts_with('2') {
            Ok(())
        } else {
            Err(format!("{} answered {code}", self.url))
        }
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
        st.labels = vec![
            ("source".into(), "faultline".into()),
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
        st.grouping = self.grouping.clone().unwrap_or_else(|| {
            BTreeMap::from([("chaostoolkit_experiment_ref".to_string(), reference)])
        });
    }

    fn before_experiment<'a>(&'a self, _run: &'a RunInfo) -> Hook<'a> {
        Box::pin(async move {
            let (labels, grouping) = {
                let mut st = self.state();
                st.started = Some(Instant::now());
                (st.labels.clone(), st.grouping.clone())
            };
            if let Err(e) = self.push(&grouping, &Self::body(&labels, 1.0, None)) {
                self.state().errors.push(e);
            }
            Decision::Continue
        })
    }

    fn after_experiment(&self, _run: &RunInfo, status: Status, deviated: bool) {
        let (labels, grouping, started) = {
            let st = self.state();
            (st.labels.clone(), st.grouping.clone(), st.started)
        };
        let duration = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        if let Err(e) = self.push(
            &grouping,
            &Self::body(&labels, 0.0, Some((status, deviated, duration))),
        ) {
            self.state().errors.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_chaos_toolkit_names() {
        let labels = vec![("source".to_string(), "faultline".to_string())];
        let b = RunMetrics::body(&labels, 0.0, Some((Status::Completed, true, 0.3)));
        assert!(b.contains("chaostoolkit_experiment_status{source=\"faultline\",chaostoolkit_experiment_status=\"completed\"} 1"));
        assert!(b.contains("chaostoolkit_deviated_experiment_total{source=\"faultline\"} 1"));
        assert!(b.contains(
            "chaostoolkit_experiment_duration_dist_bucket{source=\"faultline\",le=\"0.5\"} 1"
        ));
        assert!(b.contains(
            "chaostoolkit_experiment_duration_dist_bucket{source=\"faultline\",le=\"0.25\"} 0"
        ));
    }

    #[test]
    fn a_dead_gateway_is_an_error_not_a_hang() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let m = RunMetrics::from_arguments(
            &serde_json::json!({"pushgateway_url": format!("http://127.0.0.1:{port}")}),
        );
        let e = m.push(&BTreeMap::new(), "x 1\n").unwrap_err();
        assert!(e.contains("cannot reach"), "{e}");
    }
}
