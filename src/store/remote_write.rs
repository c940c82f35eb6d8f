//! Indicators forwarded to Prometheus remote write (protobuf + snappy), with their
//! real timestamps, so a team's existing Prometheus (`--web.enable-remote-write-receiver`),
//! Mimir, Thanos Receive or VictoriaMetrics computes SLOs over them.
//!
//! The store stays the source of truth: an indicator is forwarded only after its
//! commit, from a bounded queue drained by its own thread, so a slow or dead receiver
//! never slows or fails a write. What could not be delivered is counted
//! ([`ForwardStats`]), never silently lost.
//!
//! Series, one sample each at the indicator's `to` (docs/telemetry.md):
//! - `faultline_indicator_percent{org, <indicator labels>}`;
//! - `faultline_indicator_good` and `faultline_indicator_total` when it has counts;
//! - per objective that judged it, `faultline_objective_actual_percent` and
//!   `faultline_objective_target_percent` `{org, <objective labels>}`.
//!
//! Label names are made valid for Prometheus (`[a-zA-Z_][a-zA-Z0-9_]*`: anything else
//! becomes `_`).

use super::StoreError;
use crate::slo::Labels;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// The most series sent in one request.
const MAX_SERIES: usize = 2_000;
/// The most indicators waiting to be sent; beyond, they are counted as dropped.
const QUEUE: usize = 50_000;
/// Attempts per request when the receiver fails or cannot be reached.
const ATTEMPTS: u32 = 3;

/// The remote-write protocol's messages (prometheus/prompb `remote.proto`, `types.proto`).
mod prompb {
    /// `prometheus.WriteRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// The series.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }
    /// `prometheus.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Sorted by name, `__name__` included.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// In time order.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }
    /// `prometheus.Label`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// Name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Value.
        #[prost(string, tag = "2")]
        pub value: String,
    }
    /// `prometheus.Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

/// One committed indicator, with what the objectives made of it.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// The organisation.
    pub org: String,
    /// The indicator's labels.
    pub labels: Labels,
    /// Its `to`, in milliseconds since the epoch.
    pub at_ms: i64,
    /// Its percent.
    pub percent: f64,
    /// Its counts.
    pub counts: Option<(u64, u64)>,
    /// (objective labels, target, actual) per objective that judged it.
    pub objectives: Vec<(Labels, f64, f64)>,
}

/// What the forwarder did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Indicators the receiver accepted.
    pub sent: u64,
    /// Indicators dropped: the queue was full, or the receiver refused or failed.
    pub dropped: u64,
}

/// The sending side, held by the store's writer. Clones share one queue.
#[derive(Clone)]
pub struct Forwarder {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Option<mpsc::SyncSender<Forwarded>>>,
    counters: Arc<Counters>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// How long closing the store waits for the queue to drain.
const FINISH: Duration = Duration::from_secs(5);

impl Forwarder {
    /// Start forwarding to `url` (`http(s)://host:port/api/v1/write`).
    pub fn start(url: &str) -> Result<Forwarder, StoreError> {
        let url = check_url(url).map_err(StoreError::Invalid)?;
        crate::tls::init();
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let theirs = counters.clone();
        // The blocking client owns a runtime: it is made and dropped on its own thread,
        // never inside the caller's async context.
        let (ready_tx, ready_rx) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("faultline-remote-write".into())
            .spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .connect_timeout(Duration::from_secs(3))
                    .build();
                match client {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        run(c, url, rx, &theirs);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("remote write thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StoreError::Unavailable(format!("remote write client: {e}"))),
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "remote write thread stopped".into(),
                ))
            }
        }
        Ok(Forwarder {
            shared: Arc::new(Shared {
                queue: Mutex::new(Some(tx)),
                counters,
                worker: Mutex::new(Some(worker)),
            }),
        })
    }

    /// Queue committed indicators; never blocks (a full or closed queue counts a drop).
    pub fn send(&self, items: Vec<Forwarded>) {
        let queue = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        for item in items {
            let ok = queue.as_ref().is_some_and(|q| q.try_send(item).is_ok());
            if !ok {
                self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// What was sent and dropped so far.
    pub fn stats(&self) -> ForwardStats {
        ForwardStats {
            sent: self.shared.counters.sent.load(Ordering::Relaxed),
            dropped: self.shared.counters.dropped.load(Ordering::Relaxed),
        }
    }

    /// Close the queue and wait (at most 5 s) for what it holds to be sent; what is
    /// still queued then is counted as dropped by the thread as it gives up.
    pub fn finish(&self) {
        drop(
            self.shared
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let worker = self
            .shared
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = worker {
            let (done_tx, done_rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = h.join();
                let _ = done_tx.send(());
            });
            let _ = done_rx.recv_timeout(FINISH);
        }
    }
}

fn run(
    client: reqwest::blocking::Client,
    url: url::Url,
    rx: mpsc::Receiver<Forwarded>,
    stats: &Counters,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_SERIES / 4 {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let body = encode(&batch);
        if post(&client, &url, body) {
            stats.sent.fetch_add(n, Ordering::Relaxed);
        } else {
            stats.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// The headers of every remote-write request (protocol 1.0: snappy protobuf).
pub const HEADERS: [(&str, &str); 4] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    (
        "User-Agent",
        concat!("faultline/", env!("CARGO_PKG_VERSION")),
    ),
];

/// A remote-write URL checked: it parses, and its scheme is http or https.
pub fn check_url(url: &str) -> Result<url::Url, String> {
    let parsed =
        url::Url::parse(url).map_err(|e| format!("remote write URL {url:?} is not valid: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("remote write URL {url}: use http:// or https://"));
    }
    Ok(parsed)
}

/// POST with retries on failures worth retrying (network, 5xx, 429).
fn post(client: &reqwest::blocking::Client, url: &url::Url, body: Vec<u8>) -> bool {
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200 << attempt));
        }
        let mut req = client.post(url.clone());
        for (k, v) in HEADERS {
            req = req.header(k, v);
        }
        let resp = req.body(body.clone()).send();
        match resp {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => continue,
            Ok(_) => return false, // refused: sending it again will not help
            Err(_) => continue,
        }
    }
    false
}

/// A valid Prometheus label name.
pub fn label_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    // `__` prefixes are reserved for Prometheus.
    while s.starts_with("__") {
        s.remove(0);
    }
    s
}

fn series(name: &str, org: &str, labels: &Labels, value: f64, at_ms: i64) -> prompb::TimeSeries {
    let mut ls: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (label_name(k), v.clone()))
        .filter(|(k, _)| k != "org")
        .collect();
    ls.push(("org".into(), org.into()));
    one_series(&Sample {
        name: name.into(),
        labels: ls,
        value,
        at_ms,
    })
}

/// One sample of one series, for senders other than the store's forwarder (the run
/// metrics control): the series' name, its labels (valid names, see [`label_name`]),
/// the value and its time in milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (`__name__`).
    pub name: String,
    /// Its labels; a later duplicate name is dropped, `__name__` is the name above.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// Milliseconds since the epoch.
    pub at_ms: i64,
}

fn one_series(s: &Sample) -> prompb::TimeSeries {
    let mut ls: Vec<prompb::Label> = s
        .labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .map(|(name, value)| prompb::Label {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    ls.push(prompb::Label {
        name: "__name__".into(),
        value: s.name.clone(),
    });
    // Stable: of two labels with one name, the first given is kept.
    ls.sort_by(|a, b| a.name.cmp(&b.name));
    ls.dedup_by(|a, b| a.name == b.name);
    prompb::TimeSeries {
        labels: ls,
        samples: vec![prompb::Sample {
            value: s.value,
            timestamp: s.at_ms,
        }],
    }
}

/// A request body (snappy-compressed `WriteRequest`) holding `samples`, one series
/// each, in time order.
pub fn encode_samples(samples: &[Sample]) -> Vec<u8> {
    let mut req = prompb::WriteRequest {
        timeseries: samples.iter().map(one_series).collect(),
    };
    compress(&mut req)
}

fn compress(req: &mut prompb::WriteRequest) -> Vec<u8> {
    use prost::Message;
    // Samples of one series must arrive in time order.
    req.timeseries
        .sort_by_key(|t| t.samples.first().map(|s| s.timestamp).unwrap_or(0));
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// The request body: a snappy-compressed (block format) `WriteRequest`.
pub fn encode(batch: &[Forwarded]) -> Vec<u8> {
    let mut req = prompb::WriteRequest::default();
    for f in batch {
        let ts = &mut req.timeseries;
        ts.push(series(
            "faultline_indicator_percent",
            &f.org,
            &f.labels,
            f.percent,
            f.at_ms,
        ));
        if let Some((g, t)) = f.counts {
            ts.push(series(
                "faultline_indicator_good",
                &f.org,
                &f.labels,
                g as f64,
                f.at_ms,
            ));
            ts.push(series(
                "faultline_indicator_total",
                &f.org,
                &f.labels,
                t as f64,
                f.at_ms,
            ));
        }
        for (labels, target, actual) in &f.objectives {
            ts.push(series(
                "faultline_objective_actual_percent",
                &f.org,
                labels,
                *actual,
                f.at_ms,
            ));
            ts.push(series(
                "faultline_objective_target_percent",
                &f.org,
                labels,
                *target,
                f.at_ms,
            ));
        }
    }
    compress(&mut req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(label_name("indicator_name"), "indicator_name");
        assert_eq!(
            label_name("app.kubernetes.io/name"),
            "app_kubernetes_io_name"
        );
        assert_eq!(label_name("9lives"), "_9lives");
        assert_eq!(label_name("__name__"), "_name__");
    }

    #[test]
    fn samples_are_encoded_with_their_name_and_sorted_labels() {
        let body = encode_samples(&[Sample {
            name: "faultline_runs_total".into(),
            labels: vec![
                ("status".into(), "completed".into()),
                ("deviated".into(), "false".into()),
                ("status".into(), "dropped".into()),
            ],
            value: 1.0,
            at_ms: 42,
        }]);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = prompb::WriteRequest::decode(raw.as_slice()).unwrap();
        let ls: Vec<(&str, &str)> = req.timeseries[0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            ls,
            [
                ("__name__", "faultline_runs_total"),
                ("deviated", "false"),
                ("status", "completed")
            ]
        );
        assert_eq!(req.timeseries[0].samples[0].timestamp, 42);
        assert!(check_url("ftp://x").is_err());
    }

    #[test]
    fn the_body_is_a_snappy_write_request_with_sorted_labels() {
        let f = Forwarded {
            org: "acme".into(),
            labels: [("category".to_string(), "Availability".to_string())].into(),
            at_ms: 1_700_000_000_000,
            percent: 90.0,
            counts: Some((9, 10)),
            objectives: vec![(
                [("name".to_string(), "avail".to_string())].into(),
                99.9,
                90.0,
            )],
        };
        let body = encode(&[f]);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = prompb::WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 5);
        let first = &req.timeseries[0];
        let names: Vec<&str> = first.labels.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(first.samples[0].timestamp, 1_700_000_000_000);
    }
}
