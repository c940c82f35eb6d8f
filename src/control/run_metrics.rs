//! `faultline.metrics`: faultline's own run metrics, for dashboards and for alert
//! rules that join on what a run targets (`… and on(service)
//! faultline_experiment_active == 1`). `chaosprometheus.metrics`
//! (`super::metrics`) keeps the Chaos Toolkit's names for existing dashboards; this
//! one has faultline's names, the run's target labels on every series, activity
//! durations, and three deliveries:
//!
//! - **Pushgateway** (`pushgateway_url`): the group `PUT` at the start and at the end,
//!   then deleted (`DELETE`) unless `keep_group`, after `delete_after` seconds so the
//!   final push can be scraped first;
//! - **remote write** (`remote_write_url`): the samples at the start and at the end,
//!   through the store's encoder (`crate::store::remote_write`: snappy protobuf);
//! - **listen** (`listen: "127.0.0.1:9464"`): `GET /metrics` served during the run
//!   from the run's recorder (live activity histograms), stopped at the end after
//!   `linger` seconds.
//!
//! The exposition comes from `metrics` + `metrics-exporter-prometheus` with a recorder
//! of the run's own (never the process-wide one), rendered once per delivery; remote
//! write sends the same series, read back from that rendering. Every request has a
//! 1 s limit and runs off the run's thread (the start delivery on a thread joined at
//! the end, before the end delivery so that a late start push never overwrites the
//! final one); failures are warnings at the end (`metrics.push_failed`), never a
//! change to the run. Wrong arguments are problems that stop the run before it starts.

use super::pushgateway::{self, Gateway, LIMIT};
use super::{ActivityInfo, Control, Decision, Hook, RunInfo};
use crate::experiment::labels::TargetLabels;
use crate::run::journal::RunEntry;
use crate::run::Status;
use crate::store::remote_write;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs ended, by `status` and `deviated` (`true`/`false`).
pub const RUNS_TOTAL: &str = "faultline_runs_total";
/// Runs whose steady state deviated.
pub const DEVIATIONS_TOTAL: &str = "faultline_deviations_total";
/// The run's duration in seconds.
pub const RUN_DURATION: &str = "faultline_run_duration_seconds";
/// Each activity's duration in seconds (pauses excluded), by `activity_kind`,
/// `phase`, `status`.
pub const ACTIVITY_DURATION: &str = "faultline_activity_duration_seconds";
/// 1 while the run is in progress, 0 after.
pub const ACTIVE: &str = "faultline_experiment_active";
/// 1, with the run's `run_id` and `trace_id`: one series per run.
pub const RUN_INFO: &str = "faultline_run_info";

/// Activity buckets (seconds): 5 ms (a local HTTP probe) to 10 min (a long action).
pub const ACTIVITY_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Run buckets (seconds): 1 s to 2 h.
pub const RUN_BUCKETS: [f64; 12] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
];

/// Label names faultline's own series use (and Prometheus' `le`, `quantile`, and the
/// `job`/`instance` a scrape or the Pushgateway sets): a target label with one of
/// these names is sent as `target_<name>`.
const RESERVED: [&str; 12] = [
    "experiment",
    "experiment_ref",
    "run_id",
    "trace_id",
    "status",
    "deviated",
    "activity_kind",
    "phase",
    "le",
    "quantile",
    "job",
    "instance",
];

/// The longest `delete_after` or `linger`: they delay the end of the run.
const MAX_WAIT: f64 = 600.0;

/// Where the metrics go.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The Pushgateway's base URL.
    pub pushgateway: Option<String>,
    /// The Pushgateway job.
    pub job: String,
    /// The grouping key (default `{experiment_ref, run_id}`).
    pub grouping: Option<BTreeMap<String, String>>,
    /// Keep the group after the run.
    pub keep_group: bool,
    /// Wait this long after the final push before deleting the group.
    pub delete_after: Duration,
    /// A remote-write receiver.
    pub remote_write: Option<String>,
    /// Serve `/metrics` here during the run.
    pub listen: Option<SocketAddr>,
    /// Keep serving this long after the end.
    pub linger: Duration,
    /// Activity histogram buckets.
    pub activity_buckets: Vec<f64>,
    /// Run histogram buckets.
    pub run_buckets: Vec<f64>,
    /// Send `faultline_run_info`.
    pub run_info: bool,
}

const ARGUMENTS: [&str; 12] = [
    "mode",
    "pushgateway_url",
    "job",
    "grouping_key",
    "keep_group",
    "delete_after",
    "remote_write_url",
    "listen",
    "linger",
    "buckets",
    "run_info",
    "experiment_ref",
];

/// Bucket bounds: a non-empty list of finite positive numbers, strictly increasing.
pub fn parse_buckets(v: &Value) -> Result<Vec<f64>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("expected a list of numbers of seconds, found {v}"))?;
    if items.is_empty() {
        return Err("the list is empty: give at least one bound".into());
    }
    if items.len() > 64 {
        return Err(format!("{} bounds: at most 64", items.len()));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let b = item
            .as_f64()
            .filter(|b| b.is_finite() && *b > 0.0)
            .ok_or_else(|| format!("[{i}]: expected a positive number of seconds, found {item}"))?;
        if let Some(prev) = out.last() {
            if b <= *prev {
                return Err(format!(
                    "[{i}]: {b} is not above {prev}: bounds must increase (+Inf is implied)"
                ));
            }
        }
        out.push(b);
    }
    Ok(out)
}

fn wait_seconds(args: &Value, key: &str, problems: &mut Vec<String>) -> Duration {
    match args.get(key) {
        None | Some(Value::Null) => Duration::ZERO,
        Some(v) => match v.as_f64().filter(|s| (0.0..=MAX_WAIT).contains(s)) {
            Some(s) => crate::duration::seconds(s).unwrap_or_default(),
            None => {
                problems.push(format!(
                    "{key}: expected seconds from 0 to {MAX_WAIT}, found {v}"
                ));
                Duration::ZERO
            }
        },
    }
}

impl Config {
    /// From the control's `arguments`, every problem named by its argument.
    pub fn from_arguments(args: &Value) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let empty = serde_json::Map::new();
        let map = match args {
            Value::Null => &empty,
            Value::Object(m) => m,
            other => {
                return Err(vec![format!(
                    "expected an object of arguments, found {other}"
                )])
            }
        };
        for k in map.keys() {
            if !ARGUMENTS.contains(&k.as_str()) {
                problems.push(format!(
                    "{k}: unknown argument (known: {})",
                    ARGUMENTS.join(", ")
                ));
            }
        }
        let mut text = |k: &str| match map.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(other) => {
                problems.push(format!("{k}: expected a non-empty string, found {other}"));
                None
            }
        };
        let mut pushgateway = text("pushgateway_url");
        let mut remote_write = text("remote_write_url");
        let listen_text = text("listen");
        let job = text("job").unwrap_or_else(|| "faultline".into());
        let mode = map.get("mode");
        let modes: Vec<String> = match mode {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(other) => {
                problems.push(format!(
                    "mode: expected \"pushgateway\", \"remote_write\", \"listen\" or a list of them, found {other}"
                ));
                Vec::new()
            }
        };
        for m in &modes {
            if !["pushgateway", "remote_write", "listen"].contains(&m.as_str()) {
                problems.push(format!(
                    "mode: unknown delivery {m:?} (pushgateway, remote_write, listen)"
                ));
            }
        }
        let wants = |m: &str| modes.iter().any(|x| x == m);
        let mut listen = listen_text.as_deref().and_then(|l| match l.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!(
                    "listen: {l:?} is not an address and port (e.g. \"127.0.0.1:9464\")"
                ));
                None
            }
        });
        if modes.is_empty() {
            // Inferred from what is given; nothing given is the Pushgateway on
            // localhost, as chaosprometheus.metrics does.
            if pushgateway.is_none() && remote_write.is_none() && listen_text.is_none() {
                pushgateway = Some("http://localhost:9091".into());
            }
        } else {
            if wants("pushgateway") && pushgateway.is_none() {
                pushgateway = Some("http://localhost:9091".into());
            }
            if wants("listen") && listen_text.is_none() {
                listen = "127.0.0.1:9464".parse().ok();
            }
            if wants("remote_write") && remote_write.is_none() {
                problems.push("mode remote_write needs remote_write_url".into());
            }
            for (m, given) in [
                ("pushgateway", map.contains_key("pushgateway_url")),
                ("remote_write", map.contains_key("remote_write_url")),
                ("listen", map.contains_key("listen")),
            ] {
                if given && !wants(m) {
                    problems.push(format!(
                        "mode does not include {m}, yet its address is given: add it to mode or remove the address"
                    ));
                }
            }
            if !wants("remote_write") {
                remote_write = None;
            }
            if !wants("pushgateway") {
                pushgateway = None;
            }
        }
        if let Some(u) = &pushgateway {
            if let Err(e) = pushgateway::push_url(u, &job, &BTreeMap::new()) {
                problems.push(e);
            }
        }
        if let Some(u) = &remote_write {
            if let Err(e) = remote_write::check_url(u) {
                problems.push(format!("remote_write_url: {e}"));
            }
        }
        let grouping = match map.get("grouping_key") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let mut g = BTreeMap::new();
                for (k, v) in m {
                    if !crate::experiment::labels::valid_key(k) || k.starts_with("__") || k == "job"
                    {
                        problems.push(format!(
                            "grouping_key.{k}: not a label name the Pushgateway takes"
                        ));
                    }
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        other => {
                            problems.push(format!(
                                "grouping_key.{k}: expected a string, found {other}"
                            ));
                            continue;
                        }
                    };
                    g.insert(k.clone(), v);
                }
                Some(g)
            }
            Some(other) => {
                problems.push(format!(
                    "grouping_key: expected an object of label values, found {other}"
                ));
                None
            }
        };
        let mut flag = |k: &str, default: bool| match map.get(k) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                problems.push(format!("{k}: expected true or false, found {other}"));
                default
            }
        };
        let keep_group = flag("keep_group", false);
        let run_info = flag("run_info", true);
        let delete_after = wait_seconds(args, "delete_after", &mut problems);
        let linger = wait_seconds(args, "linger", &mut problems);
        let (mut activity_buckets, mut run_buckets) =
            (ACTIVITY_BUCKETS.to_vec(), RUN_BUCKETS.to_vec());
        match map.get("buckets") {
            None | Some(Value::Null) => {}
            Some(Value::Object(b)) => {
                for (k, v) in b {
                    let target = match k.as_str() {
                        "activity" => &mut activity_buckets,
                        "run" => &mut run_buckets,
                        _ => {
                            problems.push(format!(
                                "buckets.{k}: unknown histogram (activity, run)"
                            ));
                            continue;
                        }
                    };
                    match parse_buckets(v) {
                        Ok(b) => *target = b,
                        Err(e) => problems.push(format!("buckets.{k}: {e}")),
                    }
                }
            }
            Some(other) => problems.push(format!(
                "buckets: expected {{\"activity\": [seconds...], \"run\": [seconds...]}}, found {other}"
            )),
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            pushgateway,
            job,
            grouping,
            keep_group,
            delete_after,
            remote_write,
            listen,
            linger,
            activity_buckets,
            run_buckets,
            run_info,
        })
    }
}

/// The run's target labels as label pairs for its series: names made valid for
/// Prometheus (`store::remote_write::label_name`: other characters become `_`), a
/// name faultline's own series use (or `le`, `job`, …) prefixed `target_`, empty
/// values dropped (Prometheus reads an empty label as no label), and of two labels
/// that end up with one name the first in name order kept.
pub fn series_labels(target: &TargetLabels) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in target {
        if v.is_empty() {
            continue;
        }
        let mut name = remote_write::label_name(k);
        if RESERVED.contains(&name.as_str()) {
            name = format!("target_{name}");
        }
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, v.clone()));
        }
    }
    out
}

/// A recorder whose every series carries `labels`, with the two histograms' buckets
/// (without them the exporter renders summaries).
fn recorder(config: &Config, labels: &[(String, String)]) -> PrometheusRecorder {
    // Fails only for an empty list, which `parse_buckets` refuses.
    let mut b = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(RUN_DURATION.into()), &config.run_buckets)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(ACTIVITY_DURATION.into()),
                &config.activity_buckets,
            )
        })
        .unwrap_or_default();
    for (k, v) in labels {
        b = b.add_global_label(k, v);
    }
    b.build_recorder()
}

fn describe() {
    metrics::describe_gauge!(ACTIVE, "1 while the experiment runs, 0 after");
    metrics::describe_gauge!(RUN_INFO, "The run's ids (one series per run)");
    metrics::describe_counter!(RUNS_TOTAL, "Runs ended, by status and deviation");
    metrics::describe_counter!(DEVIATIONS_TOTAL, "Runs whose steady state deviated");
    metrics::describe_histogram!(
        RUN_DURATION,
        metrics::Unit::Seconds,
        "Run duration in seconds"
    );
    metrics::describe_histogram!(
        ACTIVITY_DURATION,
        metrics::Unit::Seconds,
        "Activity duration in seconds, pauses excluded"
    );
}

fn record_start(rec: &PrometheusRecorder, info: Option<(&str, Option<&str>)>) {
    metrics::with_local_recorder(rec, || {
        describe();
        metrics::gauge!(ACTIVE).set(1.0);
        metrics::counter!(DEVIATIONS_TOTAL).increment(0);
        if let Some((run_id, trace_id)) = info {
            match trace_id {
                Some(t) => {
                    metrics::gauge!(RUN_INFO, "run_id" => run_id.to_string(), "trace_id" => t.to_string())
                        .set(1.0)
                }
                None => metrics::gauge!(RUN_INFO, "run_id" => run_id.to_string()).set(1.0),
            }
        }
    });
}

fn record_activity(rec: &PrometheusRecorder, kind: &str, phase: &str, status: &str, seconds: f64) {
    metrics::with_local_recorder(rec, || {
        metrics::histogram!(ACTIVITY_DURATION,
            "activity_kind" => kind.to_string(), "phase" => phase.to_string(), "status" => status.to_string())
        .record(seconds);
    });
}

fn record_end(rec: &PrometheusRecorder, status: Status, deviated: bool, seconds: f64) {
    metrics::with_local_recorder(rec, || {
        describe();
        metrics::gauge!(ACTIVE).set(0.0);
        metrics::counter!(RUNS_TOTAL, "status" => status.as_str(), "deviated" => if deviated { "true" } else { "false" })
            .increment(1);
        metrics::counter!(DEVIATIONS_TOTAL).increment(u64::from(deviated));
        metrics::histogram!(RUN_DURATION).record(seconds);
    });
}

/// The samples of a text exposition (as `metrics-exporter-prometheus` renders it:
/// `name{k="v",...} value` lines, comments), each with `extra` labels added and the
/// time `at_ms`, for remote write.
pub fn samples(text: &str, extra: &[(String, String)], at_ms: i64) -> Vec<remote_write::Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let name_end = l.find(['{', ' '])?;
            let name = &l[..name_end];
            let mut labels = Vec::new();
            let mut rest = &l[name_end..];
            if let Some(r) = rest.strip_prefix('{') {
                let mut chars = r.char_indices().peekable();
                // name="value" pairs, separated by commas, up to '}'.
                let end = loop {
                    let (i, c) = *chars.peek()?;
                    if c == '}' {
                        break i + 1;
                    }
                    if c == ',' {
                        chars.next();
                        continue;
                    }
                    let start = i;
                    while chars.peek().is_some_and(|(_, c)| *c != '=') {
                        chars.next();
                    }
                    let (eq, _) = chars.next()?;
                    let key = r[start..eq].trim().to_string();
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()? {
                            (_, '\\') => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            (_, '"') => break,
                            (_, c) => value.push(c),
                        }
                    }
                    labels.push((key, value));
                };
                rest = &r[end..];
            }
            let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
            labels.extend(extra.iter().cloned());
            Some(remote_write::Sample {
                name: name.to_string(),
                labels,
                value,
                at_ms,
            })
        })
        .collect()
}

/// POST `samples` to a remote-write receiver within [`LIMIT`].
async fn remote_write_post(url: &str, samples: &[remote_write::Sample]) -> Result<(), String> {
    let shown = pushgateway::shown(url);
    let parsed = remote_write::check_url(url)?;
    let mut req = pushgateway::client()?.post(parsed);
    for (k, v) in remote_write::HEADERS {
        req = req.header(k, v);
    }
    let req = req.body(remote_write::encode_samples(samples));
    pushgateway::send(req, &shown).await
}

/// The `/metrics` server of the listen delivery: a thread with a runtime of its own
/// (the run's may be busy), stopped by [`Listener::stop`].
struct Listener {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Listener {
    fn start(addr: SocketAddr, handle: PrometheusHandle) -> Result<Listener, String> {
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("faultline-metrics-listen".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let app = axum::Router::new().route(
                        "/metrics",
                        axum::routing::get(move || {
                            let body = handle.render();
                            async move {
                                (
                                    [(
                                        axum::http::header::CONTENT_TYPE,
                                        "text/plain; version=0.0.4",
                                    )],
                                    body,
                                )
                            }
                        }),
                    );
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
                rt.shutdown_background();
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("cannot start the /metrics server: {e}"))?;
        Ok(Listener {
            stop: Some(stop_tx),
            done: done_rx,
        })
    }

    /// Stop serving; wait at most [`LIMIT`] for a scrape being answered.
    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.done.recv_timeout(LIMIT);
    }
}

/// faultline's run metrics (`faultline.metrics`).
pub struct FaultlineMetrics {
    config: Config,
    experiment_ref: Option<String>,
    gateway: Option<Arc<Gateway>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    recorder: Option<Arc<PrometheusRecorder>>,
    grouping: BTreeMap<String, String>,
    run_id: String,
    trace_id: Option<String>,
    started: Option<Instant>,
    start_delivery: Option<std::thread::JoinHandle<Vec<String>>>,
    listener: Option<Listener>,
    errors: Vec<String>,
}

impl FaultlineMetrics {
    /// From the control's `arguments`; the problems name the argument.
    pub fn from_arguments(args: &Value) -> Result<FaultlineMetrics, Vec<String>> {
        let config = Config::from_arguments(args)?;
        Ok(FaultlineMetrics {
            gateway: config
                .pushgateway
                .as_ref()
                .map(|u| Arc::new(Gateway::new(u.clone(), config.job.clone()))),
            experiment_ref: args
                .get("experiment_ref")
                .and_then(Value::as_str)
                .map(str::to_string),
            config,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Errors met while delivering, for the CLI to report.
    pub fn errors(&self) -> Vec<String> {
        self.state().errors.clone()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One delivery of a rendering: the Pushgateway group replaced, and remote write.
async fn deliver(
    gateway: Option<&Gateway>,
    grouping: &BTreeMap<String, String>,
    remote: Option<(&str, Vec<remote_write::Sample>)>,
    body: &str,
) -> Vec<String> {
    let push = async {
        match gateway {
            Some(g) => g.put(grouping, body.to_string()).await.err(),
            None => None,
        }
    };
    let write = async {
        match &remote {
            Some((url, s)) => remote_write_post(url, s).await.err(),
            None => None,
        }
    };
    let (a, b) = tokio::join!(push, write);
    a.into_iter().chain(b).collect()
}

impl Control for FaultlineMetrics {
    fn name(&self) -> &str {
        "faultline metrics"
    }

    fn configure(&self, run: &RunInfo) {
        let mut labels = series_labels(&run.labels);
        let reference = self
            .experiment_ref
            .clone()
            .unwrap_or_else(|| run.experiment_ref.clone());
        labels.push(("experiment".into(), run.title.clone()));
        labels.push(("experiment_ref".into(), reference.clone()));
        let rec = Arc::new(recorder(&self.config, &labels));
        let mut st = self.state();
        st.run_id = run.run_id.clone();
        st.trace_id = run.trace_id.clone();
        st.grouping = self.config.grouping.clone().unwrap_or_else(|| {
            BTreeMap::from([
                ("experiment_ref".to_string(), reference),
                ("run_id".to_string(), run.run_id.clone()),
            ])
        });
        if let Some(addr) = self.config.listen {
            match Listener::start(addr, rec.handle()) {
                Ok(l) => st.listener = Some(l),
                Err(e) => st.errors.push(e),
            }
        }
        st.recorder = Some(rec);
    }

    fn before_experiment<'a>(&'a self, _run: &'a RunInfo) -> Hook<'a> {
        let mut st = self.state();
        st.started = Some(Instant::now());
        let Some(rec) = st.recorder.clone() else {
            return Box::pin(async { Decision::Continue });
        };
        let run_id = st.run_id.clone();
        let trace_id = st.trace_id.clone();
        record_start(
            &rec,
            self.config
                .run_info
                .then_some((run_id.as_str(), trace_id.as_deref())),
        );
        if self.gateway.is_some() || self.config.remote_write.is_some() {
            let body = rec.handle().render();
            let gateway = self.gateway.clone();
            let grouping = st.grouping.clone();
            let remote = self.config.remote_write.clone().map(|u| {
                let s = samples(&body, &[("run_id".into(), run_id.clone())], now_ms());
                (u, s)
            });
            // Off the run's thread: the run starts at once, and the end joins it.
            let spawned = std::thread::Builder::new()
                .name("faultline-metrics-start".into())
                .spawn(move || {
                    pushgateway::blocking(|| async {
                        Ok(deliver(
                            gateway.as_deref(),
                            &grouping,
                            remote.as_ref().map(|(u, s)| (u.as_str(), s.clone())),
                            &body,
                        )
                        .await)
                    })
                    .unwrap_or_else(|e| vec![e])
                });
            match spawned {
                Ok(h) => st.start_delivery = Some(h),
                Err(e) => st.errors.push(format!("cannot start the delivery: {e}")),
            }
        }
        Box::pin(async { Decision::Continue })
    }

    fn after_activity(&self, a: &ActivityInfo<'_>, entry: &RunEntry) {
        let Some(rec) = self.state().recorder.clone() else {
            return;
        };
        record_activity(
            &rec,
            a.kind.as_str(),
            a.phase.as_str(),
            entry.status.as_str(),
            entry.duration.max(0.0),
        );
    }

    fn after_experiment(&self, _run: &RunInfo, status: Status, deviated: bool) {
        let (rec, grouping, run_id, started, start, listener) = {
            let mut st = self.state();
            let Some(rec) = st.recorder.clone() else {
                return;
            };
            (
                rec,
                st.grouping.clone(),
                st.run_id.clone(),
                st.started,
                st.start_delivery.take(),
                st.listener.take(),
            )
        };
        let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        record_end(&rec, status, deviated, seconds);
        let mut errors = Vec::new();
        // The start push must land before the final one, which replaces it.
        if let Some(h) = start {
            errors.extend(
                h.join()
                    .unwrap_or_else(|_| vec!["the start delivery panicked".into()]),
            );
        }
        let body = rec.handle().render();
        let remote = self.config.remote_write.as_ref().map(|u| {
            let s = samples(&body, &[("run_id".into(), run_id)], now_ms());
            (u.as_str(), s)
        });
        let gateway = self.gateway.as_deref();
        let (keep, delete_after, linger) = (
            self.config.keep_group,
            self.config.delete_after,
            self.config.linger,
        );
        let out = pushgateway::blocking(|| async {
            let pushed = async {
                let mut errors = deliver(gateway, &grouping, remote, &body).await;
                if let (Some(g), false) = (gateway, keep) {
                    // What Prometheus has not scraped by now it never will.
                    tokio::time::sleep(delete_after).await;
                    if let Err(e) = g.delete(&grouping).await {
                        errors.push(format!("the group was not deleted: {e}"));
                    }
                }
                errors
            };
            let served = async {
                if let Some(l) = listener {
                    tokio::time::sleep(linger).await;
                    let _ = tokio::task::spawn_blocking(move || l.stop()).await;
                }
            };
            Ok(tokio::join!(pushed, served).0)
        });
        match out {
            Ok(e) => errors.extend(e),
            Err(e) => errors.push(e),
        }
        self.state().errors.extend(errors);
    }

    /// A run that never reached its end (refused after `configure`) still stops
    /// serving `/metrics`.
    fn cleanup(&self) {
        let listener = self.state().listener.take();
        if let Some(l) = listener {
            l.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn buckets_are_checked_and_default_to_chaos_run_ranges() {
        assert_eq!(
            parse_buckets(&json!([0.5, 1, 30])).unwrap(),
            [0.5, 1.0, 30.0]
        );
        assert!(parse_buckets(&json!([])).unwrap_err().contains("empty"));
        assert!(parse_buckets(&json!([1, 1]))
            .unwrap_err()
            .contains("[1]: 1 is not above 1"));
        assert!(parse_buckets(&json!([2, 1]))
            .unwrap_err()
            .contains("increase"));
        assert!(parse_buckets(&json!([0]))
            .unwrap_err()
            .contains("[0]: expected a positive"));
        assert!(parse_buckets(&json!(["1"]))
            .unwrap_err()
            .contains("positive"));
        assert!(parse_buckets(&json!(5)).unwrap_err().contains("list"));
        let c = Config::from_arguments(&json!({"buckets": {"run": [10, 60]}})).unwrap();
        assert_eq!(c.run_buckets, [10.0, 60.0]);
        assert_eq!(c.activity_buckets, ACTIVITY_BUCKETS);
        assert_eq!(ACTIVITY_BUCKETS[0], 0.005);
        assert_eq!(ACTIVITY_BUCKETS[ACTIVITY_BUCKETS.len() - 1], 600.0);
        assert_eq!(
            (RUN_BUCKETS[0], RUN_BUCKETS[RUN_BUCKETS.len() - 1]),
            (1.0, 7200.0)
        );
        let e =
            Config::from_arguments(&json!({"buckets": {"actvity": [1], "run": []}})).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("buckets.actvity: unknown histogram"),
            "{e:?}"
        );
    }

    #[test]
    fn the_delivery_is_inferred_from_what_is_given() {
        let c = Config::from_arguments(&Value::Null).unwrap();
        assert_eq!(c.pushgateway.as_deref(), Some("http://localhost:9091"));
        assert_eq!(
            (c.job.as_str(), c.keep_group, c.run_info),
            ("faultline", false, true)
        );
        let c = Config::from_arguments(&json!({"remote_write_url": "http://p:9090/api/v1/write"}))
            .unwrap();
        assert_eq!((c.pushgateway.is_none(), c.listen), (true, None));
        let c = Config::from_arguments(&json!({"mode": "listen"})).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9464".parse().ok());
        assert!(c.pushgateway.is_none());
        let e = Config::from_arguments(&json!({
            "mode": "remote_write", "pushgateway_url": "http://g", "keep_groups": true,
            "delete_after": -1, "listen": "nowhere"}))
        .unwrap_err();
        let all = e.join("\n");
        for want in [
            "keep_groups: unknown argument",
            "mode remote_write needs remote_write_url",
            "mode does not include pushgateway",
            "delete_after: expected seconds",
            "listen: \"nowhere\" is not an address",
        ] {
            assert!(all.contains(want), "{want} missing:\n{all}");
        }
    }

    #[test]
    fn target_labels_are_made_valid_and_never_shadow_faultline_labels() {
        let target: TargetLabels = [
            ("service", "checkout"),
            ("app.kubernetes.io/name", "api"),
            ("app_kubernetes_io_name", "other"),
            ("status", "prod"),
            ("le", "x"),
            ("job", "j"),
            ("__meta", "m"),
            ("empty", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let got = series_labels(&target);
        let got: BTreeMap<_, _> = got.into_iter().collect();
        let want: BTreeMap<String, String> = [
            ("service", "checkout"),
            ("_meta", "m"),
            ("app_kubernetes_io_name", "api"),
            ("target_status", "prod"),
            ("target_le", "x"),
            ("target_job", "j"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples(text, &[], 0)
            .into_iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
    }

    #[test]
    fn one_run_renders_every_series_with_the_target_labels() {
        let config = Config::from_arguments(&json!({"buckets": {"activity": [0.1, 1]}})).unwrap();
        let labels = vec![
            ("service".to_string(), "checkout".to_string()),
            ("experiment".to_string(), "say \"hi\"\n".to_string()),
        ];
        let rec = recorder(&config, &labels);
        record_start(&rec, Some(("r1", Some("t1"))));
        let start = rec.handle().render();
        assert_eq!(
            value(&start, ACTIVE, &[("service", "checkout")]),
            Some(1.0),
            "{start}"
        );
        assert_eq!(
            value(&start, ACTIVE, &[("experiment", "say \"hi\"\n")]),
            Some(1.0),
            "escapes read back: {start}"
        );
        assert_eq!(
            value(&start, RUN_INFO, &[("run_id", "r1"), ("trace_id", "t1")]),
            Some(1.0)
        );
        record_activity(&rec, "probe", "before", "succeeded", 0.05);
        record_activity(&rec, "action", "method", "failed", 2.0);
        record_end(&rec, Status::Completed, true, 42.0);
        let end = rec.handle().render();
        let svc = ("service", "checkout");
        assert_eq!(value(&end, ACTIVE, &[svc]), Some(0.0));
        assert_eq!(
            value(
                &end,
                RUNS_TOTAL,
                &[svc, ("status", "completed"), ("deviated", "true")]
            ),
            Some(1.0),
            "{end}"
        );
        assert_eq!(value(&end, DEVIATIONS_TOTAL, &[svc]), Some(1.0));
        let bucket = format!("{ACTIVITY_DURATION}_bucket");
        let probe = [
            svc,
            ("activity_kind", "probe"),
            ("phase", "before"),
            ("status", "succeeded"),
        ];
        assert_eq!(
            value(
                &end,
                &bucket,
                &[probe[0], probe[1], probe[2], probe[3], ("le", "0.1")]
            ),
            Some(1.0),
            "{end}"
        );
        let action = [
            svc,
            ("activity_kind", "action"),
            ("status", "failed"),
            ("le", "1"),
        ];
        assert_eq!(value(&end, &bucket, &action), Some(0.0), "{end}");
        let run_bucket = format!("{RUN_DURATION}_bucket");
        assert_eq!(
            value(&end, &run_bucket, &[svc, ("le", "30")]),
            Some(0.0),
            "{end}"
        );
        assert_eq!(
            value(&end, &run_bucket, &[svc, ("le", "60")]),
            Some(1.0),
            "{end}"
        );
        assert_eq!(
            value(&end, &run_bucket, &[svc, ("le", "+Inf")]),
            Some(1.0),
            "{end}"
        );
        for line in [
            "# TYPE faultline_runs_total counter",
            "# TYPE faultline_run_duration_seconds histogram",
            "# TYPE faultline_activity_duration_seconds histogram",
            "# TYPE faultline_experiment_active gauge",
        ] {
            assert!(end.lines().any(|l| l == line), "{line} missing:\n{end}");
        }
    }

    #[test]
    fn exposition_lines_become_samples_with_the_extra_labels() {
        let s = samples(
            "# HELP x y\nx{a=\"1\",b=\"q\\\"\\\\\"} 2.5\ny 3\nz_bucket{le=\"+Inf\"} 1\n",
            &[("run_id".into(), "r".into())],
            7,
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "x");
        assert_eq!(
            s[0].labels,
            [
                ("a".into(), "1".into()),
                ("b".into(), "q\"\\".into()),
                ("run_id".into(), "r".into())
            ]
        );
        assert_eq!((s[0].value, s[0].at_ms), (2.5, 7));
        assert_eq!((s[1].name.as_str(), s[1].value), ("y", 3.0));
        assert_eq!(s[2].labels[0], ("le".into(), "+Inf".into()));
    }

    #[test]
    fn every_name_label_and_argument_is_documented() {
        let doc = include_str!("../../docs/telemetry.md");
        let section = &doc[doc.find("## Run metrics").unwrap()..];
        let section = &section[..section[3..].find("\n## ").unwrap()];
        let names = [
            RUNS_TOTAL,
            DEVIATIONS_TOTAL,
            RUN_DURATION,
            ACTIVITY_DURATION,
            ACTIVE,
            RUN_INFO,
        ];
        for name in names.iter().chain(&RESERVED).chain(&ARGUMENTS) {
            assert!(
                section.contains(&format!("`{name}`")),
                "{name} is not in docs/telemetry.md's Run metrics"
            );
        }
        for b in ACTIVITY_BUCKETS.iter().chain(&RUN_BUCKETS) {
            assert!(section.contains(&b.to_string()), "bucket {b}");
        }
    }

    /// A whole run against the test server standing in for a Pushgateway: two PUTs
    /// then a DELETE of the same group.
    #[tokio::test]
    async fn pushes_then_deletes_the_group() {
        let srv = crate::test_http::Server::start(|_| crate::test_http::Response::status(200));
        let m =
            FaultlineMetrics::from_arguments(&json!({"pushgateway_url": srv.url("/gw")})).unwrap();
        let run = RunInfo {
            run_id: "r1".into(),
            title: "t".into(),
            experiment: json!({"title": "t"}),
            trace_id: Some("t1".into()),
            labels: [("service".to_string(), "x".to_string())].into(),
            experiment_ref: "ref1".into(),
            started: chrono::Utc::now(),
            ended: None,
            duration: None,
            journal: None,
        };
        m.configure(&run);
        m.before_experiment(&run).await;
        m.after_experiment(&run, Status::Completed, false);
        assert!(m.errors().is_empty(), "{:?}", m.errors());
        let reqs = srv.requests();
        let methods: Vec<&str> = reqs.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["PUT", "PUT", "DELETE"]);
        for r in &reqs {
            assert_eq!(
                r.path,
                "/gw/metrics/job/faultline/experiment_ref/ref1/run_id/r1"
            );
        }
        assert_eq!(
            value(&reqs[0].text(), ACTIVE, &[("service", "x")]),
            Some(1.0)
        );
        assert_eq!(
            value(&reqs[1].text(), ACTIVE, &[("service", "x")]),
            Some(0.0)
        );
    }
}
